/**
 * A full disk under the state directory: the old state file stays intact,
 * the error names the file, registrations go on, and the state catches up
 * once there is room again. Needs root for a small tmpfs.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, openSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { account } from "../helpers/accounts.ts";
import { defer } from "../helpers/cleanup.ts";
import { isRoot } from "../helpers/env.ts";
import { startGateway } from "../helpers/gateway.ts";
import { register } from "../helpers/register.ts";
import { waitFor } from "../helpers/wait.ts";

/** Mounts a small tmpfs, or says why it cannot. */
function tmpfs(size: string): { path: string } | string {
  if (!isRoot) return "needs root to mount a small tmpfs (CI runs as root)";
  const path = mkdtempSync(join(tmpdir(), "conductor-full-"));
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", path], { encoding: "utf8" });
  if (r.status !== 0) {
    rmSync(path, { recursive: true, force: true });
    return `cannot mount a tmpfs here: ${r.stderr.trim()}`;
  }
  return { path };
}

/** Writes zeros to `path` until the file system is full. */
function fill(path: string): void {
  const fd = openSync(path, "w");
  const block = Buffer.alloc(4096);
  try {
    for (;;) writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd);
  }
}

test("a full disk leaves the state file intact, logs its path, and the state catches up when there is room", async (t) => {
  const mounted = tmpfs("256k");
  if (typeof mounted === "string") {
    t.skip(mounted);
    return;
  }
  const mnt = mounted.path;
  defer(t, () => {
    execFileSync("umount", [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });
  const state = join(mnt, "state");
  mkdirSync(state, { mode: 0o700 });
  chownSync(state, account("conductor").uid, account("conductor").gid);
  const gw = await startGateway(t, { args: ["--state-dir", state] });
  const file = join(state, "users", "alice.json");
  const keys = (): string[] => (JSON.parse(readFileSync(file, "utf8")) as { routes: Array<{ key: string }> }).routes.map((r) => r.key).sort();

  const a = await register(t, gw.controlPath, { key: "first", token: "t" });
  assert.equal(a.reply.status, "ok");
  assert.ok(await waitFor(() => existsSync(file) && keys().includes("first")));

  const filler = join(mnt, "filler");
  fill(filler);
  const b = await register(t, gw.controlPath, { key: "second", token: "t" });
  assert.equal(b.reply.status, "ok", "registration goes on with a full disk");
  const logged = await gw.process.waitForJson((l) => typeof l.msg === "string" && l.msg.startsWith("Cannot save the routes of alice"), 60_000, "stderr");
  assert.match(String(logged.msg), /ENOSPC/);
  assert.equal(logged.path, file);
  assert.deepEqual(keys(), ["first"], "the old version is intact");

  writeFileSync(filler, "");
  assert.ok(await waitFor(() => keys().includes("second")), "the state caught up");
  assert.deepEqual(keys(), ["first", "second"]);
});
