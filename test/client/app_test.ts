/**
 * The app as conductor runs it, and the order of a run's events: what the
 * app wrote last comes before the `exit` event, and `exit` is the last one.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startApp } from "../../src/client/app.ts";
import { endingAtExit, type ClientEvent } from "../../src/client/events.ts";

test("stop() waits for the output a process the app left outside its group still writes: it comes before the exit event", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "conductor-app-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A helper in its own session holds the app's output and writes once the app has gone;
  // the app exits as soon as the helper says it runs.
  const helper = `const fs = require("node:fs"); const app = process.ppid; fs.writeSync(3, "1");
    const t = setInterval(() => { try { process.kill(app, 0); } catch { clearInterval(t); process.stdout.write("after the app\\n"); } }, 5);`;
  const appScript = `const h = require("node:child_process").spawn(process.execPath, ["-e", ${JSON.stringify(helper)}],
    { detached: true, stdio: ["ignore", "inherit", "inherit", "pipe"] }); h.stdio[3].once("data", () => process.exit(0));`;
  const events: ClientEvent[] = [];
  const app = await startApp({ command: [process.execPath, "-e", appScript], socket: join(dir, "app.sock"), env: process.env, events: (e) => events.push(e) });
  assert.equal(await app.exited, 0);
  assert.equal(await app.stop(), 0);
  const output = events.filter((e) => e.state === "data").map((e) => (e as { data: string }).data).join("");
  assert.equal(output, "after the app\n", "what was written after the app exited was read before stop() resolved");
});

test("endingAtExit: events pass until exit, which passes; what comes later goes elsewhere", () => {
  const printed: ClientEvent[] = [];
  const late: ClientEvent[] = [];
  const events = endingAtExit((e) => printed.push(e), (e) => late.push(e));
  events({ state: "failed", reason: "the app exited" });
  events({ state: "exit", status: 0 });
  events({ state: "connecting", user: null, host: "gw", port: null, timeout: 30 });
  assert.deepEqual(printed.map((e) => e.state), ["failed", "exit"]);
  assert.deepEqual(late.map((e) => e.state), ["connecting"]);
});
