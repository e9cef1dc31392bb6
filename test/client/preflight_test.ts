/**
 * What a run checks before it starts anything, on a real file system: the
 * token, the socket's directory, the ssh program.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseClientArgs, type ClientArgs } from "../../src/client/cli.ts";
import { preflight } from "../../src/client/preflight.ts";
import { defer } from "../helpers/cleanup.ts";

test("preflight() names a bad CONDUCTOR_TOKEN, a missing socket directory and a missing ssh program", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "conductor-preflight-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const ssh = join(dir, "my-ssh");
  writeFileSync(ssh, "#!/bin/sh\n");
  chmodSync(ssh, 0o755);
  const run = (socket: string): ClientArgs => {
    const c = parseClientArgs(["gw", socket, "--", "app"]);
    assert.ok(c.kind === "run");
    return c.options;
  };
  const env = { PATH: dir, CONDUCTOR_SSH: undefined as string | undefined };
  const ok = run(join(dir, "app.sock"));

  assert.equal(await preflight(ok, { PATH: "", CONDUCTOR_SSH: ssh }), null);
  assert.equal(await preflight(ok, { PATH: dir, CONDUCTOR_SSH: "my-ssh" }), null, "a name is looked up in PATH");
  assert.match((await preflight(ok, { ...env, CONDUCTOR_SSH: ssh, CONDUCTOR_TOKEN: "" }))!, /^CONDUCTOR_TOKEN is set but empty; set it to at least 16 random characters, or unset it/);
  assert.match((await preflight(run(join(dir, "nowhere", "app.sock")), { CONDUCTOR_SSH: ssh }))!, /directory .*nowhere does not exist: create it first \(mkdir -p /);
  assert.match((await preflight(ok, { PATH: "", CONDUCTOR_SSH: join(dir, "no-ssh") }))!, /cannot run .*no-ssh, named by CONDUCTOR_SSH/);
  assert.match((await preflight(ok, { PATH: dir }))!, /cannot find ssh in PATH: install OpenSSH's client/);
});
