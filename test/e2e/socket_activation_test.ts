/**
 * conductor-server started the way a systemd .socket unit starts it, with
 * systemd-socket-activate: it serves browsers on the socket it was given
 * (the first connection, which started it, included, with the routes it
 * took over from its previous run) and registers routes.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { request } from "../helpers/http.ts";
import { needsRoot } from "../helpers/env.ts";
import { makeRuntimeDir, startGateway } from "../helpers/gateway.ts";
import { bin } from "../helpers/install.ts";
import { startProcess } from "../helpers/process.ts";
import { register } from "../helpers/register.ts";
import { freePort } from "../helpers/sshd.ts";

const ACTIVATE = "/usr/bin/systemd-socket-activate";
const skip = spawnSync(ACTIVATE, ["--version"]).error === undefined ? false : "systemd-socket-activate is not installed (apt-get install systemd)";

test("conductor-server serves the socket systemd holds for it, from the connection that started it on", { skip }, async (t) => {
  const runtimeDir = makeRuntimeDir(t);
  const port = await freePort();
  const gateway = startProcess(t, ACTIVATE, ["-l", `127.0.0.1:${port}`, "-E", "PATH",
    process.execPath, bin("conductor-server"), "-r", runtimeDir, "--state-dir", join(runtimeDir, "state"), "--no-streams", "-v"], { user: "conductor" });
  // systemd-socket-activate holds the port and starts the gateway on the first connection, as systemd does.
  await gateway.waitForLine((l) => l.startsWith(`Listening on 127.0.0.1:${port} as 3.`), 60_000, "stderr");
  const first = await request({ port, host: "nowhere.localhost", path: "/" });
  // Answered once the gateway is ready, never "just started, try again" (503).
  assert.equal(first.status, 404, "the connection that started the gateway is answered by it");
  assert.match(first.text, /conductor/i);
  const ready = await gateway.waitForJson((l) => l.msg === "gateway listening", 60_000, "stderr");
  assert.equal(ready.port, port, "the port is the one systemd passed");

  const reg = await register(t, join(runtimeDir, "client"), { key: "activated", token: "activated-token-01" });
  const host = (reg.reply.urls as string[])[0];
  assert.match(host, new RegExp(`^activated-[a-z0-9_-]+\\.localhost:${port}$`), "the default domain names the port systemd passed");
  const hello = await request({ port, host, path: "/hello", headers: { Cookie: "authorization=activated-token-01" } });
  assert.equal(hello.text, "hello\n");
  await gateway.stop();
});

test("conductor-server refuses --port when systemd passed it a socket, and says what to change", { skip }, async (t) => {
  const port = await freePort();
  const gateway = startProcess(t, ACTIVATE, ["-l", `127.0.0.1:${port}`, process.execPath, bin("conductor-server"), "--port", "9999"], { user: "conductor" });
  await gateway.waitForLine((l) => l.startsWith(`Listening on 127.0.0.1:${port} as 3.`), 60_000, "stderr");
  await request({ port, host: "x", path: "/" }).catch(() => undefined);
  const { code } = await gateway.exited;
  await gateway.closed;
  assert.equal(code, 2);
  assert.match(gateway.stderr.join("\n"), /conductor-server: systemd passed a listening socket \(socket activation\), so --port cannot apply/);
});

test("the request that starts the gateway reaches the route it took over from its previous run (regression: 503)", { skip: skip || needsRoot }, async (t) => {
  const runtimeDir = makeRuntimeDir(t);
  const before = await startGateway(t, { runtimeDir });
  const run = await register(t, before.controlPath, { key: "woken", token: "woken-token-0001" });
  run.process.child.stdin?.write("linger\n");
  await run.process.waitForJson((l) => l.event === "lingering");
  await before.stop();

  const port = await freePort();
  const gateway = startProcess(t, ACTIVATE, ["-l", `127.0.0.1:${port}`, "-E", "PATH",
    process.execPath, bin("conductor-server"), "-r", runtimeDir, "--state-dir", join(runtimeDir, "state"), "--no-streams", "-v"], { user: "conductor" });
  await gateway.waitForLine((l) => l.startsWith(`Listening on 127.0.0.1:${port} as 3.`), 60_000, "stderr");
  // This connection waits in the socket's queue while the gateway starts and takes the stored route over.
  const first = await request({ port, host: `woken-alice.localhost:${port}`, path: "/hello", headers: { Cookie: "authorization=woken-token-0001" } });
  assert.equal(first.status, 200, `the waking request is served: ${first.status} ${first.text}`);
  assert.equal(first.text, "hello\n");
  await gateway.stop();
});
