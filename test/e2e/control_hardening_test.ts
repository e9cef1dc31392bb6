/**
 * The control socket against other local users: what bob plants in alice's
 * client directory while it is still open does not break her registration
 * (a web route or a stream), and connections a user holds open, silent or
 * refused and unread, do not hold the gateway's stop.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { runAs } from "../helpers/as_user.ts";
import { needsRoot } from "../helpers/env.ts";
import { startGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { fixture } from "../helpers/install.ts";
import { nginxMissing, STREAM_MODULE } from "../helpers/nginx.ts";
import { startProcess } from "../helpers/process.ts";
import { register } from "../helpers/register.ts";
import { exchangeFrom, freePortRange, startStreamGateway } from "../helpers/streams.ts";
import { waitFor } from "../helpers/wait.ts";

const streamSkip = needsRoot || nginxMissing || (existsSync(STREAM_MODULE) ? false : "nginx's stream module is not installed (apt-get install libnginx-mod-stream)");

/**
 * What bob runs: finds the sockets bound under the sockets directory (argv[1])
 * in /proc/net/unix, as any user can, and plants a file, a symbolic link and
 * a FIFO beside each; prints the directories.
 */
const PLANT = `
import * as fs from "node:fs"; import { execFileSync } from "node:child_process"; import { dirname, join } from "node:path";
const dirs = new Set();
for (const line of fs.readFileSync("/proc/net/unix", "utf8").split("\\n")) {
  const path = line.trim().split(/\\s+/)[7];
  if (path !== undefined && path.startsWith(process.argv[1] + "/")) dirs.add(dirname(path));
}
for (const dir of dirs) {
  fs.writeFileSync(join(dir, "planted"), "bob's");
  fs.symlinkSync("/etc/passwd", join(dir, "link"));
  execFileSync("mkfifo", [join(dir, "fifo")]);
  console.log(dir);
}`;

for (const kind of ["http", "tcp"] as const) {
  test(`a file, a symbolic link and a FIFO another user plants in alice's open client directory do not break her registration (${kind})`, { skip: kind === "tcp" ? streamSkip : needsRoot }, async (t) => {
    const gw = kind === "tcp" ? await startStreamGateway(t, (await freePortRange(1)).text) : await startGateway(t);
    const token = "alice-token-0123";
    const alice = startProcess(t, process.execPath, [fixture("client"), gw.controlPath, "lab", token, kind === "tcp" ? "eof-echo" : "app"], {
      user: "alice", stdin: true, env: { FIXTURE_HOLD_CONFIG: "1", ...(kind === "tcp" ? { FIXTURE_CONFIG_EXTRA: JSON.stringify({ kind }) } : {}) },
    });
    const placed = await alice.waitForJson((l) => l.event === "placed");
    const dir = dirname(placed.path as string);
    assert.equal(await runAs(t, "bob", PLANT, join(gw.runtimeDir, "sockets")), dir, "bob finds alice's directory and plants in it");

    alice.child.stdin!.write("config\n");
    const reply = await alice.waitForJson((l) => l.event === "reply");
    assert.equal(reply.status, "ok", JSON.stringify(reply));
    if (kind === "tcp") {
      assert.equal((await exchangeFrom(reply.port as number, "ping")).toString(), "after your end, 4 bytes: ping");
    } else {
      const hello = await request({ port: gw.port, host: gw.host("lab", "alice"), path: "/hello", headers: { Cookie: `authorization=${token}` } });
      assert.deepEqual([hello.status, hello.text], [200, "hello\n"]);
    }
    alice.child.stdin!.write("goodbye\n");
    await alice.exited;
    assert.ok(await waitFor(() => !existsSync(dir)), "the directory goes, with what bob planted");
  });
}

test("SIGTERM stops the gateway while a local user holds control connections open: a silent one, and twenty refused at --max-pending that never read", { skip: needsRoot }, async (t) => {
  const gw = await startGateway(t, { args: ["--max-pending", "1"] });
  const live = await register(t, gw.controlPath, { key: "lab", token: "alice-token-0123" });
  assert.equal(live.reply.status, "ok");
  // One silent connection fills the pool (its socket placed, so it does not give way); the rest are refused, unread.
  const flood = startProcess(t, process.execPath, [fixture("flood"), gw.controlPath, "1", "20"], { user: "bob", stdin: true });
  await flood.waitForJson((l) => l.mute === 20);
  const refusals = (): number => gw.process.json("stderr").filter((l) => l.msg === "too many unregistered control connections; refusing one").length;
  assert.ok(await waitFor(() => refusals() === 20), `the gateway refused them: ${refusals()}`);

  gw.process.child.kill("SIGTERM");
  const exit = await Promise.race([gw.process.exited, new Promise((resolve) => setTimeout(resolve, 60_000, "still running after 60 s").unref())]);
  assert.deepEqual(exit, { code: 0, signal: null }, "the gateway stops on its own");
  assert.ok(gw.process.json("stderr").some((l) => l.msg === "stopped"));
  assert.ok(await flood.waitForJson((l) => l.closed === 0), "the silent connection was closed");
  await live.process.waitForJson((l) => l.event === "closed");
});
