import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { socketExposure } from "../../src/client/privacy.ts";
import { defer } from "../helpers/cleanup.ts";

test("socketExposure() warns of a world-writable socket only when every directory above it lets others through", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "conductor-privacy-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "app.sock");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  defer(t, () => server.close());
  chmodSync(dir, 0o755);
  chmodSync(path, 0o666);
  assert.match(String(await socketExposure(path)), /writable by all users \(mode 0666\).*private directory/);
  chmodSync(path, 0o600);
  assert.equal(await socketExposure(path), null, "a 0600 socket is private");
  chmodSync(path, 0o777);
  chmodSync(dir, 0o700);
  assert.equal(await socketExposure(path), null, "a private directory protects a 0777 socket");
});
