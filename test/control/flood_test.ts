/**
 * The control socket under a flood of connections that never speak: the
 * gateway refuses the excess cleanly, times the idle ones out, and keeps
 * serving (in-process, as the suite's own user).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startGateway } from "../../src/server/service.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { request } from "../helpers/http.ts";
import { defer } from "../helpers/cleanup.ts";
import { waitFor } from "../helpers/wait.ts";

function firstLine(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => { text += c; if (text.includes("\n")) resolve(text.split("\n")[0]); });
    socket.on("close", () => resolve(text));
    socket.on("error", () => resolve(text));
  });
}

/** An in-process gateway with a small pending-connection pool. */
async function floodGateway(t: Parameters<typeof defer>[0], configTimeoutMs: number, maxPending = 3) {
  const dir = mkdtempSync(join(tmpdir(), "conductor-flood-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const gw = await startGateway({ port: 0, bind: "127.0.0.1", runtimeDir: dir, stateDir: join(dir, "state"), domains: [], trustForwarded: false, maxPending, configTimeoutMs }, silentLogger);
  defer(t, () => gw.close());
  return gw;
}

/** Opens `n` control connections that never speak, each once it got its banner (returned with it). */
async function silentConnections(path: string, n: number): Promise<Array<{ socket: Socket; banner: string }>> {
  const idle: Array<{ socket: Socket; banner: string }> = [];
  for (let i = 0; i < n; i++) {
    const socket = connect(path);
    const banner = await firstLine(socket);
    assert.match(banner, /"directory"/);
    idle.push({ socket, banner });
  }
  return idle;
}

test("control socket: connections beyond the limit are refused, and one closing at once does not crash the gateway", async (t) => {
  // Silent connections keep their slots for as long as this test needs: the refusal does not race their time-out.
  const gw = await floodGateway(t, 600_000, 1);
  const [idle] = await silentConnections(gw.control.path, 1);
  // Its client placed its socket: the only pending connection of its user never gives way to a newcomer.
  const placed = createServer();
  await new Promise<void>((resolve) => placed.listen(join(JSON.parse(idle.banner).directory, "socket"), resolve));
  defer(t, () => new Promise((resolve) => placed.close(resolve)));
  // Over the limit, closing right away: the refusal's write fails and must not take the gateway down.
  for (let i = 0; i < 20; i++) connect(gw.control.path).on("error", () => {}).destroy();
  const over = connect(gw.control.path);
  assert.match(await firstLine(over), /the gateway is busy/);
  const port = (gw.address as { port: number }).port;
  assert.equal((await request({ port, host: "x.localhost", path: "/_conductor/status" })).status, 200);
  idle.socket.destroy();
});

test("control socket: when it is full, a connection that placed nothing for a while gives way to a newcomer, and is told why", async (t) => {
  const gw = await floodGateway(t, 600_000, 1);
  const [{ socket: silent }] = await silentConnections(gw.control.path, 1);
  const told = new Promise<string>((resolve) => {
    let text = "";
    silent.on("data", (c: string) => { text += c; });
    silent.on("close", () => resolve(text));
  });
  // Newcomers are refused while the silent one may still be setting up, then one gets in.
  let banner = "";
  assert.ok(await waitFor(async () => {
    const newcomer = connect(gw.control.path);
    banner = await firstLine(newcomer);
    if (!banner.includes('"directory"')) newcomer.destroy();
    return banner.includes('"directory"');
  }), `a newcomer gets in: ${banner}`);
  assert.match(await told, /Cannot register: the gateway's control socket is full and this connection had sent nothing yet; try again/);
});

test("control socket: silent connections are closed after the config time-out, and new clients get in again", async (t) => {
  const gw = await floodGateway(t, 2000);
  // They fill the pool; whether or not each got its banner before its time ran out, the gateway closes it.
  const idle = [1, 2, 3].map(() => connect(gw.control.path).on("error", () => {}).resume());
  await Promise.all(idle.map((s) => new Promise((r) => s.once("close", r))));
  const fresh = connect(gw.control.path);
  assert.match(await firstLine(fresh), /"directory"/);
  fresh.destroy();
});
