/**
 * Idle shutdown end to end (real sshd, gateway as user conductor, client as
 * alice): `conductor --idle-timeout` stops an app no browser uses and exits 0,
 * browser requests keep it up, websocket pings (and the app's pongs) do not,
 * and the gateway's --max-idle closes a route whatever its client asked.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { startConductor, type TestConductor } from "../helpers/conductor.ts";
import { needsRoot } from "../helpers/env.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { isAlive } from "../helpers/procs.ts";
import { register } from "../helpers/register.ts";
import { sshdMissing, startSshd } from "../helpers/sshd.ts";
import { waitFor } from "../helpers/wait.ts";
import { openWebSocket } from "../helpers/websocket.ts";

const skip = sshdMissing;
const TOKEN = "idle-token-0123456";
const COOKIE = { Cookie: `authorization=${TOKEN}` };

/** Checks that a run that went idle stopped everything: exit 0, app gone, route and state gone. */
async function assertStoppedIdle(client: TestConductor, gw: TestGateway, host: string): Promise<Record<string, unknown>> {
  const idle = await client.process.waitForJson((e) => e.state === "idle");
  const { code } = await client.process.exited;
  assert.equal(code, 0, "conductor exits 0 so that the batch job ends");
  const app = client.events().find((e) => e.state === "execute")!.pid as number;
  assert.ok(await waitFor(() => !isAlive(app)), "the app is stopped");
  assert.ok(client.events().some((e) => e.state === "exit"), "the app's exit is reported");
  assert.equal((await request({ port: gw.port, host, path: "/hello", headers: COOKIE })).status, 404, "the route is gone at once (a goodbye, not a drop)");
  assert.ok(await waitFor(() => !existsSync(join(gw.runtimeDir, "state", "users", "alice.json"))), "no route is left in the gateway's state");
  return idle;
}

test("conductor --idle-timeout stops an app no browser opened, counted from going live, and exits 0", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, gw, { key: "unopened", token: TOKEN, args: ["--idle-timeout", "3s"] });
  const live = await client.live();
  const idle = await assertStoppedIdle(client, gw, live.urls[0]);
  assert.ok(typeof idle.seconds === "number" && idle.seconds >= 3, JSON.stringify(idle));
  assert.equal(idle.reason, undefined, "the client's own timeout, not the gateway's");
});

test("browser requests keep an app past its idle timeout; websocket pings and the app's answers do not", { skip, timeout: 180_000 }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, gw, { key: "busy", token: TOKEN, args: ["--idle-timeout", "10s"] });
  const live = await client.live();
  const host = live.urls[0];
  // Requests every 300 ms for longer than the idle timeout: the run stays live throughout (a request would
  // have to take some 8 s, past the gateway's one-second reports, for the run to go idle meanwhile).
  const until = Date.now() + 12_000;
  while (Date.now() < until) {
    assert.equal((await request({ port: gw.port, host, path: "/hello", headers: COOKIE })).status, 200);
    assert.equal(client.events().find((e) => e.state === "idle"), undefined, "no idle event while browsers use the app");
    await new Promise((r) => setTimeout(r, 300));
  }
  // A tab left open: a websocket that only pings, and the app answers each ping.
  const ws = await openWebSocket({ port: gw.port, host, path: "/ws", headers: COOKIE });
  const pinging = setInterval(() => ws.ping("still here"), 300);
  t.after(() => clearInterval(pinging));
  assert.ok(await waitFor(() => ws.pongs > 0), "the app answers the pings");
  const idle = await assertStoppedIdle(client, gw, host);
  clearInterval(pinging);
  assert.ok(ws.pongs > 3, `pings and pongs went on while the run counted idle time: ${ws.pongs} pongs`);
  assert.ok(typeof idle.seconds === "number" && idle.seconds >= 10, JSON.stringify(idle));
});

test("conductor-server --max-idle closes a route whose client asked for no idle timeout, with a reason the client prints", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t, { args: ["--max-idle", "3s"] });
  const client = startConductor(t, sshd, gw, { key: "forgotten", token: TOKEN });
  const live = await client.live();
  const idle = await assertStoppedIdle(client, gw, live.urls[0]);
  assert.match(String(idle.reason), /^No browser used this app for [0-9]+ s, the limit of this gateway \(conductor-server --max-idle 3s\)$/);
  assert.ok(typeof idle.seconds === "number" && idle.seconds >= 3, JSON.stringify(idle));
  assert.ok(!client.events().some((e) => e.state === "dead"), "the client does not reconnect");
});

test("after --max-idle closed it, a client of the original protocol that registers again with the same token is refused; a new run gets in", { skip: needsRoot }, async (t) => {
  const gw = await startGateway(t, { args: ["--max-idle", "2s"] });
  const original = await register(t, gw.controlPath, { key: "cycling", token: TOKEN });
  assert.equal(original.reply.status, "ok");
  // The original client reads nothing after its reply: it sees the connection end, as after a drop.
  await original.process.waitForJson((l) => l.event === "closed");
  const again = await register(t, gw.controlPath, { key: "cycling", token: TOKEN });
  assert.equal(again.reply.status, "error");
  assert.match(String(again.reply.reason), /this run was closed for being idle past the gateway's --max-idle; start a new run \(with a new token\)/);
  const fresh = await register(t, gw.controlPath, { key: "cycling", token: "another-run-token-0123" });
  assert.equal(fresh.reply.status, "ok", "a new run publishes the app again");
});
