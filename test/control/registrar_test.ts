/**
 * The registrar at its seam, in process, with real sockets and files and a
 * fake clock: publish, replace (once), end in each way, take over after a
 * restart, the per-user limits and the rate limit, and a stream's port kept
 * for its owner for the grace. The sockets are owned by the test users, as
 * sshd would create them, so this needs root.
 */
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createClientDir, prepareSocketsDir } from "../../src/control/directories.ts";
import { parseRegister, type RegisterRequest } from "../../src/control/protocol.ts";
import type { Holder } from "../../src/control/registrar/publication.ts";
import { Registrar, type RegistrarOptions } from "../../src/control/registrar/registrar.ts";
import { parseDomainPattern } from "../../src/gateway/domains.ts";
import { DEFAULT_POOL_OPTIONS } from "../../src/gateway/pool.ts";
import { RECONNECT_GRACE_MS, RouteTable } from "../../src/gateway/routes.ts";
import { createStats } from "../../src/gateway/stats.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { hashToken } from "../../src/lib/token.ts";
import { GatewayState } from "../../src/state/gateway_state.ts";
import { DEFAULT_STREAM_SETTINGS, type StreamSettings } from "../../src/streams/settings.ts";
import { stopStreams } from "../../src/streams/switchboard.ts";
import { account, type AccountName } from "../helpers/accounts.ts";
import type { Cleanup } from "../helpers/cleanup.ts";
import { defer } from "../helpers/cleanup.ts";
import { needsRoot } from "../helpers/env.ts";
import { nginxMissing } from "../helpers/nginx.ts";
import { freePortRange } from "../helpers/streams.ts";
import { waitFor } from "../helpers/wait.ts";

/** A registrar on fresh directories, with a clock the test moves. */
interface Bench {
  registrar: Registrar;
  routes: RouteTable;
  socketsDir: string;
  runtimeDir: string;
  stateDir: string;
  clock: { now: number };
  options: RegistrarOptions;
}

async function openBench(t: Cleanup, extra: Partial<RegistrarOptions> = {}, dir?: string): Promise<Bench> {
  const base = dir ?? mkdtempSync(join(tmpdir(), "conductor-registrar-"));
  if (dir === undefined) defer(t, () => rmSync(base, { recursive: true, force: true }));
  const runtimeDir = join(base, "run");
  const stateDir = join(base, "state");
  mkdirSync(runtimeDir, { recursive: true, mode: 0o755 });
  const state = new GatewayState(stateDir, silentLogger);
  await state.prepare();
  const socketsDir = await prepareSocketsDir(runtimeDir);
  const routes = new RouteTable([parseDomainPattern("{key}-{user}.example.org")]);
  const clock = { now: Date.now() };
  const options: RegistrarOptions = {
    routes, stats: createStats(), logger: silentLogger, pool: DEFAULT_POOL_OPTIONS, state, socketsDir, runtimeDir, stateDir,
    maxRoutesPerUser: 3, maxIdleMs: 0, now: () => clock.now, ...extra,
  };
  const registrar = await Registrar.open(options);
  defer(t, () => registrar.close());
  return { registrar, routes, socketsDir, runtimeDir, stateDir, clock, options };
}

/** A client's directory with its forwarded socket in it, owned by `user`, as sshd places it. */
async function placeSocket(t: Cleanup, socketsDir: string, user: AccountName): Promise<{ dir: string; server: Server }> {
  const dir = await createClientDir(socketsDir);
  const path = join(dir, "socket");
  const server = createServer((c) => c.end());
  await new Promise<void>((resolve) => server.listen(path, resolve));
  chmodSync(path, 0o660);
  chownSync(path, account(user).uid, account(user).gid);
  defer(t, () => new Promise((resolve) => server.close(resolve)));
  return { dir, server };
}

/** A control connection as the registrar sees it, recording what it is told. */
function holder(): Holder & { told: string[] } {
  const told: string[] = [];
  return { gone: false, told, replaced: (reason) => { told.push(`replaced: ${reason}`); }, closedIdle: (reason) => { told.push(`idle: ${reason}`); }, activity: () => true };
}

function request(key: string, token: string, name?: string): RegisterRequest {
  return parseRegister({ auth: hashToken(token), key, ...(name === undefined ? {} : { name }) });
}

test("registerRoute() publishes; the same run replaces its route once (the old holder is told, its directory goes); another run is refused", { skip: needsRoot }, async (t) => {
  const { registrar, routes, socketsDir } = await openBench(t);
  const first = await placeSocket(t, socketsDir, "alice");
  const firstHolder = holder();
  const published = await registrar.registerRoute(first.dir, request("lab", "token-one-0123456"), firstHolder);
  assert.equal(routes.lookup("lab-alice.example.org"), published.route);

  const other = await placeSocket(t, socketsDir, "alice");
  await assert.rejects(registrar.registerRoute(other.dir, request("lab", "token-two-0123456"), holder()),
    (err: Error & { code?: string }) => err.code === "CONDUCTOR_ERR_KEY_TAKEN" && /from another conductor run/.test(err.message));

  const again = await placeSocket(t, socketsDir, "alice");
  const back = await registrar.registerRoute(again.dir, request("lab", "token-one-0123456"), holder());
  assert.equal(routes.lookup("lab-alice.example.org"), back.route);
  assert.deepEqual(firstHolder.told, ["replaced: replaced by a new registration of the same run"]);
  assert.ok(await waitFor(() => !existsSync(first.dir)), "the replaced route's directory goes");
  // Its connection then closes and ends it: nothing happens twice.
  registrar.end(published, "dropped", "the control connection closed");
  assert.equal(routes.lookup("lab-alice.example.org"), back.route, "ending the replaced route again leaves the new one");
  assert.equal(routes.recentlyGone("lab-alice.example.org"), false);
});

test("end(): a drop keeps the host answering 503 for the grace, a goodbye removes it at once, a stop keeps it published", { skip: needsRoot }, async (t) => {
  const { registrar, routes, socketsDir } = await openBench(t);
  const publish = async (key: string) => registrar.registerRoute((await placeSocket(t, socketsDir, "alice")).dir, request(key, `token-${key}-0123456`), holder());
  const dropped = await publish("a");
  const left = await publish("b");
  const kept = await publish("c");
  registrar.end(dropped, "dropped", "test");
  registrar.end(left, "goodbye", "test");
  registrar.end(kept, "kept", "test");
  assert.equal(routes.lookup("a-alice.example.org"), undefined);
  assert.equal(routes.recentlyGone("a-alice.example.org"), true, `answers 503 for ${RECONNECT_GRACE_MS / 1000} s`);
  assert.equal(routes.recentlyGone("b-alice.example.org"), false, "a goodbye leaves no 503 window");
  assert.equal(routes.lookup("c-alice.example.org"), kept.route, "kept for the next start");
  assert.ok(await waitFor(() => !existsSync(dropped.directory) && !existsSync(left.directory)));
  assert.ok(existsSync(kept.directory));
});

test("the per-user limit and the rate limit refuse with their reasons; the rate refills with the clock; others are not slowed", { skip: needsRoot }, async (t) => {
  // Bursts of max(2, twice the limit of 3) = 6, then 60 a minute.
  const { registrar, socketsDir, clock } = await openBench(t, { rate: { burst: 2, perMinute: 60 } });
  const attempt = async (user: AccountName, key: string) =>
    registrar.registerRoute((await placeSocket(t, socketsDir, user)).dir, request(key, `token-${user}-${key}-0123`), holder());
  for (const key of ["a", "b", "c"]) await attempt("alice", key);
  await assert.rejects(attempt("alice", "d"), (err: Error & { code?: string }) => err.code === "CONDUCTOR_ERR_ROUTE_LIMIT" && /already holds 3 routes/.test(err.message));
  await assert.rejects(attempt("alice", "e"), /ROUTE_LIMIT|already holds 3 routes/);
  await assert.rejects(attempt("alice", "f"), /already holds 3 routes/);
  await assert.rejects(attempt("alice", "g"), (err: Error & { code?: string }) => err.code === "CONDUCTOR_ERR_RATE" && /registered more than 60 times a minute.*try again in 1 s/.test(err.message));
  await attempt("bob", "a");
  clock.now += 1000;
  await assert.rejects(attempt("alice", "h"), /already holds 3 routes/, "a second later, alice may try again");
});

test("open() takes over stored routes whose socket answers, held by nobody; another run takes one only once its socket is silent", { skip: needsRoot }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), "conductor-registrar-"));
  defer(t, () => rmSync(base, { recursive: true, force: true }));
  const before = await openBench(t, {}, base);
  const live = await placeSocket(t, before.socketsDir, "alice");
  const gone = await placeSocket(t, before.socketsDir, "alice");
  const holders = [holder(), holder()];
  const a = await before.registrar.registerRoute(live.dir, request("live", "token-live-01234"), holders[0]);
  const b = await before.registrar.registerRoute(gone.dir, request("gone", "token-gone-01234"), holders[1]);
  before.registrar.end(a, "kept", "stopping");
  before.registrar.end(b, "kept", "stopping");
  await before.registrar.close();
  await new Promise((resolve) => gone.server.close(resolve));

  const after = await openBench(t, {}, base);
  assert.equal(after.routes.lookup("live-alice.example.org")?.socketPath, join(live.dir, "socket"), "taken over");
  assert.equal(after.routes.lookup("gone-alice.example.org"), undefined, "a route whose socket no longer answers is dropped");
  assert.equal(after.routes.recentlyGone("gone-alice.example.org"), true, "and answers 503 while its client may come back");
  // Another run of alice: refused while the taken-over socket answers, let in once it is silent.
  const next = await placeSocket(t, after.socketsDir, "alice");
  await assert.rejects(after.registrar.registerRoute(next.dir, request("live", "token-other-0123"), holder()), /from another conductor run/);
  await new Promise((resolve) => live.server.close(resolve));
  const taken = await after.registrar.registerRoute((await placeSocket(t, after.socketsDir, "alice")).dir, request("live", "token-other-0123"), holder());
  assert.equal(after.routes.lookup("live-alice.example.org"), taken.route);
});

test("a stream dropped without a goodbye keeps its port for its owner until the grace ends, by the clock", { skip: needsRoot || nginxMissing }, async (t) => {
  const range = await freePortRange(2);
  const streams: StreamSettings = { ...DEFAULT_STREAM_SETTINGS, range, host: "127.0.0.1", graceMs: 60_000 };
  const bench = await openBench(t, { streams });
  defer(t, () => stopStreams(streams, bench.runtimeDir, silentLogger));
  const { registrar, socketsDir, clock } = bench;
  const alice = await registrar.registerStream((await placeSocket(t, socketsDir, "alice")).dir, request("db", "token-alice-0123"), range.first, holder());
  assert.equal(alice.record.port, range.first);
  registrar.end(alice, "dropped", "the control connection closed");
  const bobAsks = async () => registrar.registerStream((await placeSocket(t, socketsDir, "bob")).dir, request("db", `token-bob-${clock.now}`), range.first, holder());
  await assert.rejects(bobAsks(), /it is kept for another service whose client dropped/);
  clock.now += 59_000;
  await assert.rejects(bobAsks(), /it is kept for another service/, "still within the grace");
  clock.now += 2_000;
  const bob = await bobAsks();
  assert.equal(bob.record.port, range.first, "after the grace the port is anyone's");
});
