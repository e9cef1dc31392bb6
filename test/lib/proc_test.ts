/**
 * Reading /proc: a table longer than a page comes back whole (Node.js 18's
 * fs.promises.readFile returned its first 4 KiB).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readProcFile } from "../../src/lib/proc.ts";

test("readProcFile() reads /proc/self/net/unix to its end, past the first page (regression: Node 18 cut it)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "conductor-proc-"));
  const servers: Server[] = [];
  t.after(() => {
    for (const server of servers) server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // 40 listening sockets with long names: over 4 KiB of rows of this process alone.
  const paths = Array.from({ length: 40 }, (_, i) => join(dir, `${"x".repeat(60)}-${i}.sock`));
  for (const path of paths) {
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(path, resolve));
  }
  const text = await readProcFile("/proc/self/net/unix");
  assert.ok(text.length > 4096, `${text.length} bytes`);
  for (const path of paths) assert.ok(text.includes(path), `${path} is listed`);
  await assert.rejects(readProcFile(join(dir, "missing")), { code: "ENOENT" });
});
