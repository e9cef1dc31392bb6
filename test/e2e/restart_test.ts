/**
 * conductor-server restarts: live routes answer again at once and their
 * clients take them back; dead ones are dropped; the state files survive
 * SIGKILL in the middle of writes.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { startConductor } from "../helpers/conductor.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { register, type Registration } from "../helpers/register.ts";
import { freePort, sshdMissing, startSshd } from "../helpers/sshd.ts";
import { needsRoot } from "../helpers/env.ts";
import { openFilesUnder } from "../helpers/procs.ts";
import { waitFor } from "../helpers/wait.ts";

test("a restarted gateway publishes live routes at once, the client takes its route back, a dead route is gone", { skip: sshdMissing || needsRoot }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, gw, { key: "survivor", token: "keep-me-0123456789" });
  const live = await client.live();
  const doomed = await register(t, gw.controlPath, { key: "doomed", token: "bye", user: "bob" });
  const doomedDir = doomed.banner.directory as string;
  const hello = (port: number, host: string, token: string) => request({ port, host, path: "/hello", headers: { Cookie: `authorization=${token}` } });
  assert.equal((await hello(gw.port, live.urls[0], "keep-me-0123456789")).status, 200);

  const state = join(gw.runtimeDir, "state", "users");
  assert.ok(await waitFor(() => existsSync(join(state, "alice.json")) && existsSync(join(state, "bob.json"))), "both users' state files are written");
  const stored = JSON.parse(readFileSync(join(state, "alice.json"), "utf8"));
  assert.equal(stored.routes[0].key, "survivor");
  assert.equal(stored.routes[0].auth.length, 128, "only the token's hash is stored");
  assert.ok(!JSON.stringify(stored).includes("keep-me-0123456789"));

  await gw.stop();
  // Bob's app dies while the gateway is down.
  doomed.process.child.kill("SIGKILL");
  await doomed.process.exited;
  const again = await startGateway(t, { runtimeDir: gw.runtimeDir });
  const kept = await again.process.waitForJson((l) => l.msg === "routes kept across the restart", 60_000, "stderr");
  assert.equal(kept.count, 1);
  // Published at once, before the client has come back (same host name: the port is new, so match by key).
  const host = again.host("survivor", "alice");
  const first = await hello(again.port, host, "keep-me-0123456789");
  assert.equal(first.status, 200);
  // Its client said no goodbye, so it might be coming back: its address says "try again" for a while, and is gone from the state.
  assert.equal((await hello(again.port, again.host("doomed", "bob"), "bye")).status, 503, "the dead route is gone: its address says try again");
  assert.equal(existsSync(join(state, "bob.json")), false, "and its state");
  assert.equal(existsSync(doomedDir), false, "and its directory");
  // The client registers again with the same token and takes its route back.
  const back = await client.live(2);
  assert.equal(back.auth, "keep-me-0123456789");
  assert.equal((await hello(again.port, host, "keep-me-0123456789")).status, 200);
  // The taken-over route's directory goes once its replacement is in (removed in the background).
  assert.ok(await waitFor(() => readdirSync(join(again.runtimeDir, "sockets")).length === 1),
    `only the new directory is left: ${readdirSync(join(again.runtimeDir, "sockets")).join(", ")}`);
});

test("state files are always whole when conductor-server is killed with SIGKILL during registrations", { skip: needsRoot }, async (t) => {
  const first = await startGateway(t);
  const runtimeDir = first.runtimeDir;
  await first.stop();
  const users = join(runtimeDir, "state", "users");
  for (let round = 0; round < 12; round++) {
    const gw = await startGateway(t, { runtimeDir });
    // After a random number of registrations, the kill comes as soon as the gateway is seen with a state file
    // (or its new version) open,
    // while three clients keep registering and leaving: it lands in the middle of an update, as a crash would.
    const target = 1 + Math.floor(Math.random() * 6);
    let registered = 0;
    const churner = async (lane: number): Promise<void> => {
      for (let i = 0; ; i++) {
        const reg = await register(t, gw.controlPath, { key: `churn${round}-${lane}-${i}`, token: "t", user: (i + lane) % 2 ? "alice" : "bob" }).catch(() => null);
        if (reg === null || reg.reply.status !== "ok") return;
        registered++;
        if (i % 3 === 0) await reg.end();
      }
    };
    const churn = Promise.all([0, 1, 2].map(churner));
    assert.ok(await waitFor(() => registered >= target, 120_000), `round ${round}: ${registered} registrations of ${target}`);
    const deadline = Date.now() + 120_000;
    while (!openFilesUnder(gw.process.pid, users).some((path) => !path.endsWith(".lock"))) {
      assert.ok(Date.now() < deadline, `round ${round}: the gateway never had a state file open`);
      await new Promise((r) => setImmediate(r));
    }
    gw.process.child.kill("SIGKILL");
    await gw.process.exited;
    await churn;
    for (const name of readdirSync(users)) {
      assert.ok(!name.includes(".corrupt-"), `round ${round}: ${name}`);
      if (!name.endsWith(".json")) continue;
      const text = readFileSync(join(users, name), "utf8");
      assert.doesNotThrow(() => JSON.parse(text), `round ${round}: ${name} is whole: ${JSON.stringify(text.slice(0, 80))}`);
      assert.ok(Array.isArray(JSON.parse(text).routes), `round ${round}: ${name} holds routes`);
    }
  }
  // The last start takes over what is left and serves.
  const last = await startGateway(t, { runtimeDir });
  const reg = await register(t, last.controlPath, { key: "after", token: "t" });
  assert.equal(reg.reply.status, "ok");
});

test("a gateway restarted on its port answers its first connection with the routes it took over (regression: 503)", { skip: needsRoot }, async (t) => {
  const port = String(await freePort());
  const gw = await startGateway(t, { args: ["-p", port] });
  const run = await register(t, gw.controlPath, { key: "lab", token: "first-answer" });
  run.process.child.stdin?.write("linger\n");
  await run.process.waitForJson((l) => l.event === "lingering");
  await gw.stop();
  const again = startGateway(t, { runtimeDir: gw.runtimeDir, args: ["-p", port] });
  // Connects again and again while the gateway starts: the first connection it accepts must find the route.
  const first = await firstAnswer(() => request({ port: Number(port), host: gw.host("lab", "alice"), path: "/hello", headers: { Cookie: "authorization=first-answer" } }));
  assert.equal(first.status, 200, `the first answer is the app's: ${first.status} ${first.text}`);
  await again;
});

/** The first response of `attempt`, tried again while the connection is refused (the server is not listening yet). */
async function firstAnswer<T>(attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ECONNREFUSED" || Date.now() > deadline) throw err;
      await new Promise((r) => setImmediate(r));
    }
  }
}

/** Registers route "lab" with `token`, keeps its app when the gateway stops, and restarts the gateway until it has taken the route over. */
async function restartWithLingeringRun(t: TestContext, token: string): Promise<{ first: Registration; again: TestGateway }> {
  const gw = await startGateway(t);
  const first = await register(t, gw.controlPath, { key: "lab", token });
  first.process.child.stdin?.write("linger\n");
  await first.process.waitForJson((l) => l.event === "lingering");
  await gw.stop();
  const again = await startGateway(t, { runtimeDir: gw.runtimeDir });
  await again.process.waitForJson((l) => l.msg === "routes kept across the restart", 60_000, "stderr");
  return { first, again };
}

test("after a restart, another run takes a waiting route only when the route's client is gone", { skip: needsRoot }, async (t) => {
  const { first, again } = await restartWithLingeringRun(t, "first-run");

  // Its app still answers: the first run may come back, so another run is refused.
  const other = await register(t, again.controlPath, { key: "lab", token: "second-run" });
  assert.equal(other.reply.status, "error");
  assert.match(String(other.reply.reason), /already has a live route with key 'lab'/);

  // Its app is gone: the route's client is not coming back, and another run takes the key.
  first.process.child.stdin?.write("stop-app\n");
  await first.process.waitForJson((l) => l.event === "appStopped");
  const taker = await register(t, again.controlPath, { key: "lab", token: "second-run" });
  assert.equal(taker.reply.status, "ok", JSON.stringify(taker.reply));
  const host = again.host("lab", "alice");
  assert.equal((await request({ port: again.port, host, path: "/hello", headers: { Cookie: "authorization=second-run" } })).status, 200);
  const taken = await again.process.waitForJson((l) => l.msg === "route replaced", 60_000, "stderr");
  assert.equal(taken.sameRun, false);
});

test("after a restart, the run coming back lets the request in progress on its taken-over route finish (regression: it got a 502)", { skip: needsRoot }, async (t) => {
  const { first, again } = await restartWithLingeringRun(t, "the-run");
  const host = again.host("lab", "alice");
  const cookie = { Cookie: "authorization=the-run" };
  const held = request({ port: again.port, host, path: "/hold", headers: cookie });
  assert.ok(await waitFor(async () => (await request({ port: again.port, host, path: "/holding", headers: cookie })).text === "1"), "the app holds the request");

  const back = await register(t, again.controlPath, { key: "lab", token: "the-run" });
  assert.equal(back.reply.status, "ok", JSON.stringify(back.reply));
  const replaced = await again.process.waitForJson((l) => l.msg === "route replaced", 60_000, "stderr");
  assert.equal(replaced.sameRun, true);
  first.process.child.stdin?.write("release\n");
  const answer = await held;
  assert.equal(answer.status, 200);
  assert.equal(answer.text, "released\n");
});
