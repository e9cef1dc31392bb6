/**
 * `conductor tunnel` through a private sshd: a UNIX-socket service on the SSH
 * server's side is reachable through a local socket and a local port; two
 * tunnels and a run share one master; a stopped tunnel cancels its forward
 * and removes its socket; when the master dies the tunnel says so and exits
 * 1 while the run reconnects.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { startConductor, userDir } from "../helpers/conductor.ts";
import { startGateway } from "../helpers/gateway.ts";
import { bin } from "../helpers/install.ts";
import { startProcess, type TestProcess } from "../helpers/process.ts";
import { processesMatching, processTree } from "../helpers/procs.ts";
import { freePort, sshdMissing, startSshd, type TestSshd } from "../helpers/sshd.ts";
import { needsRoot } from "../helpers/env.ts";
import type { Cleanup } from "../helpers/cleanup.ts";

const skip = sshdMissing || needsRoot;

/** Says `line` to `target` (a socket path or a port on 127.0.0.1) and returns the first line back. */
function ask(target: string | number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = typeof target === "number" ? connect(target, "127.0.0.1") : connect(target);
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => {
      text += c;
      if (text.includes("\n")) {
        socket.destroy();
        resolve(text.split("\n")[0]);
      }
    });
    socket.on("error", reject);
    socket.write(line + "\n");
  });
}

/** Starts `conductor tunnel` as alice with the run's state environment. */
function tunnel(t: Cleanup, sshd: TestSshd, env: NodeJS.ProcessEnv, forwards: string[]): TestProcess {
  const options = sshd.clientOptions("alice").flatMap((o) => ["-o", o]);
  return startProcess(t, process.execPath, [bin("conductor"), "tunnel", ...options, `${sshd.loginName("alice")}@127.0.0.1:${sshd.port}`, ...forwards], { user: "alice", env });
}

test("conductor tunnel forwards a local socket and a local port to a socket on the SSH server, over the master a run uses", { skip, timeout: 180_000 }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const remoteDir = userDir(t, "alice");
  const remote = join(remoteDir, "service.sock");
  // A service on the SSH server's side that answers each line in capitals.
  const service = startProcess(t, process.execPath, ["-e", `
    const server = require("node:net").createServer((s) => s.on("data", (d) => s.write(String(d).toUpperCase())));
    server.listen(process.argv[1], () => console.log(JSON.stringify({ listening: true })));`, remote], { user: "alice" });
  await service.waitForJson((l) => l.listening === true);

  const run = startConductor(t, sshd, gw, { key: "beside" });
  await run.live();
  const env = run.stateEnv;
  const localDir = userDir(t, "alice");
  const local = join(localDir, "service.sock");
  const port = await freePort();
  const first = tunnel(t, sshd, env, [`${local}:${remote}`, `${port}:${remote}`]);
  let up = 0;
  await first.waitForJson((l) => l.state === "forward" && ++up === 2);
  assert.deepEqual(first.json().filter((l) => l.state === "forward"),
    [{ state: "forward", local, remote }, { state: "forward", local: `127.0.0.1:${port}`, remote }]);
  assert.equal(await ask(local, "through a socket"), "THROUGH A SOCKET");
  assert.equal(await ask(port, "through a port"), "THROUGH A PORT");

  const local2 = join(localDir, "second.sock");
  const second = tunnel(t, sshd, env, [`${local2}:${remote}`]);
  await second.waitForJson((l) => l.state === "forward");
  const masters = () => processesMatching(`-p ${sshd.port} -l ${sshd.loginName("alice")}`).filter((p) => p.cmdline.includes("ControlMaster=yes"));
  assert.equal(masters().length, 1, "the run and both tunnels use one master");
  // And sshd sees one connection of alice's: a monitor process per connection, below this test's sshd only.
  const connections = processTree(sshd.process.child.pid!).map((pid) => { try { return readFileSync(`/proc/${pid}/cmdline`, "latin1"); } catch { return ""; } })
    .filter((cmdline) => cmdline.startsWith(`sshd: ${sshd.loginName("alice")} [priv]`));
  assert.equal(connections.length, 1, `sshd holds one connection for the run and both tunnels: ${connections.join(" | ")}`);

  // Stopped, a tunnel cancels its forward and removes its socket; the others go on.
  second.child.kill("SIGTERM");
  assert.equal((await second.exited).code, 0);
  assert.equal(existsSync(local2), false, "its socket is gone");
  assert.equal(await ask(local, "still here"), "STILL HERE");

  // The master dies: the tunnel says so and exits 1; the run reconnects on a new master.
  for (const m of masters()) process.kill(m.pid, "SIGKILL");
  const failed = await first.waitForJson((l) => l.state === "failed");
  assert.match(String(failed.reason), /^The SSH connection to 127\.0\.0\.1 ended, and the forwards with it; run conductor tunnel again$/);
  assert.equal((await first.exited).code, 1);
  await run.live(2);
});

test("conductor tunnel refuses malformed forwards, and a local path that is not a socket, saying why", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const bad = tunnel(t, sshd, {}, ["8080"]);
  assert.equal((await bad.exited).code, 2);
  await bad.closed;
  assert.match(bad.stderr.join("\n"), /Cannot read forward '8080': write LOCAL:REMOTE, each a port or a UNIX socket path/);
  const relative = tunnel(t, sshd, {}, ["8080:relative.sock"]);
  assert.equal((await relative.exited).code, 2);
  await relative.closed;
  assert.match(relative.stderr.join("\n"), /the remote socket path must be absolute/);
  const dir = userDir(t, "alice");
  const notSocket = join(dir, "notes.txt");
  assert.equal((await startProcess(t, "/usr/bin/install", ["-m", "600", "/dev/null", notSocket], { user: "alice" }).exited).code, 0);
  const file = tunnel(t, sshd, {}, [`${notSocket}:/tmp/x.sock`]);
  const failed = await file.waitForJson((l) => l.state === "failed");
  assert.equal(failed.reason, `Cannot forward ${notSocket}: it is not a socket (it is a regular file); choose another path`);
  assert.equal((await file.exited).code, 1);
  assert.ok(existsSync(notSocket), "the file is left alone");
});
