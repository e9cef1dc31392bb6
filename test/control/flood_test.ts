/**
 * The control socket under a flood of connections that never speak: the
 * gateway refuses the excess cleanly, times the idle ones out, and keeps
 * serving (in-process, as the suite's own user).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startGateway } from "../../src/gateway/service.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { request } from "../helpers/http.ts";
import { defer } from "../helpers/cleanup.ts";

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
async function floodGateway(t: Parameters<typeof defer>[0], configTimeoutMs: number) {
  const dir = mkdtempSync(join(tmpdir(), "conductor-flood-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const gw = await startGateway({ port: 0, bind: "127.0.0.1", runtimeDir: dir, stateDir: join(dir, "state"), domains: [], trustForwarded: false, maxPending: 3, configTimeoutMs }, silentLogger);
  defer(t, () => gw.close());
  return gw;
}

/** Opens `n` control connections that never speak, each once it got its banner. */
async function silentConnections(path: string, n: number): Promise<Socket[]> {
  const idle: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = connect(path);
    idle.push(s);
    assert.match(await firstLine(s), /"directory"/);
  }
  return idle;
}

test("control socket: connections beyond the limit are refused, and one closing at once does not crash the gateway", async (t) => {
  // Silent connections keep their slots for as long as this test needs: the refusal does not race their time-out.
  const gw = await floodGateway(t, 600_000);
  const idle = await silentConnections(gw.control.path, 3);
  // Over the limit, closing right away: the refusal's write fails and must not take the gateway down.
  for (let i = 0; i < 20; i++) connect(gw.control.path).on("error", () => {}).destroy();
  const over = connect(gw.control.path);
  assert.match(await firstLine(over), /the gateway is busy/);
  const port = (gw.address as { port: number }).port;
  assert.equal((await request({ port, host: "x.localhost", path: "/_conductor/status" })).status, 200);
  for (const s of idle) s.destroy();
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
