/**
 * A route's connection pool against a real app socket that stalls: when the
 * route goes away, requests in flight are told at once (their browsers get
 * a 502 or a cut), instead of waiting for an answer that cannot come. And
 * its cap: requests beyond it wait in order for a freed connection, or are
 * turned away when the queue is full, the wait runs out or the route goes.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DEFAULT_POOL_OPTIONS, RoutePool, WARM_IDLE, type PoolClient } from "../../src/gateway/pool.ts";
import { createStats } from "../../src/gateway/stats.ts";
import { SPARE_IDLE_MS, type ExchangeHandler, type Upstream } from "../../src/gateway/upstream.ts";
import { clock } from "../../src/lib/sweeper.ts";
import { defer } from "../helpers/cleanup.ts";

/** An app that reads requests and answers `answer` (or nothing), on a fresh socket. */
async function stallingApp(t: Parameters<typeof defer>[0], answer: string): Promise<{ path: string; requests: () => number }> {
  const dir = mkdtempSync(join(tmpdir(), "conductor-pool-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "app.sock");
  let requests = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("data", () => {
      requests++;
      if (answer !== "") socket.write(answer);
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  defer(t, () => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return { path, requests: () => requests };
}

/** A handler that records how its exchange ended. */
function recorder(): ExchangeHandler & { ended: Promise<string> } {
  let settle!: (how: string) => void;
  const ended = new Promise<string>((resolve) => {
    settle = resolve;
    // Long enough for any machine; a hang is what is being tested for.
    setTimeout(() => resolve("still waiting after 60 s"), 60_000).unref();
  });
  return {
    ended,
    onResponseHead: () => {},
    onResponseData: () => true,
    onResponseEnd: () => settle("end"),
    onUpstreamDrain: () => {},
    onUpstreamError: (err, _retryable, started) => settle(`error ${(err as NodeJS.ErrnoException).code}${started ? " after the head" : ""}`),
  };
}

/** Waits for `check` to hold; fails after 60 s (a guard for any machine: a hang is what some tests look for). */
async function until(check: () => boolean, what = "the condition"): Promise<void> {
  const limit = Date.now() + 60_000;
  while (!check()) {
    if (Date.now() > limit) assert.fail(`still waiting for ${what} after 60 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("RoutePool.destroy() fails an exchange waiting for its response head", async (t) => {
  const app = await stallingApp(t, "");
  const stats = createStats();
  const pool = new RoutePool(app.path, stats);
  const handler = recorder();
  pool.connect().request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", handler);
  await until(() => app.requests() === 1);
  assert.equal(stats.upstreamOpen, 1, "the open connection is counted");
  pool.destroy();
  assert.equal(await handler.ended, "error EGONE");
  await until(() => pool.openCount === 0);
  assert.equal(stats.upstreamOpen, 0, "and uncounted once closed");
});

test("RoutePool.destroy() fails an exchange in the middle of its body", async (t) => {
  const app = await stallingApp(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
  const pool = new RoutePool(app.path, createStats());
  const handler = recorder();
  let head = false;
  handler.onResponseHead = () => { head = true; };
  pool.connect().request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", handler);
  await until(() => head);
  pool.destroy();
  assert.equal(await handler.ended, "error EGONE after the head");
});

/** What a lease was given: a connection, null, or nothing yet. */
function leased(pool: RoutePool, fresh = false): { got: Promise<Upstream | null>; given: () => boolean; withdraw: () => void } {
  let given = false;
  let client: PoolClient | null = null;
  const got = new Promise<Upstream | null>((resolve) => {
    client = { take: (u) => { given = true; resolve(u); } };
    pool.lease(client, fresh);
  });
  return { got, given: () => given, withdraw: () => pool.withdraw(client!) };
}

test("RoutePool at its cap: a request waits for the next connection freed and gets it; beyond the queue it is turned away at once", async (t) => {
  const app = await stallingApp(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  const pool = new RoutePool(app.path, createStats(), { ...DEFAULT_POOL_OPTIONS, maxOpen: 2, maxWaiting: 1, waitMs: 600_000 });
  const a = await leased(pool).got;
  const b = await leased(pool).got;
  assert.ok(a !== null && b !== null && a !== b, "two new connections under the cap");
  const c = leased(pool);
  assert.equal(c.given(), false, "the third waits");
  assert.equal(pool.waitingCount, 1);
  assert.equal(await leased(pool).got, null, "the fourth is turned away: the queue holds one");
  const withdrawn = leased(pool);
  // (the queue is full, so this one was turned away too; withdrawing it is harmless)
  assert.equal(await withdrawn.got, null);
  const done = recorder();
  a!.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", done);
  a!.endRequest();
  assert.equal(await done.ended, "end");
  assert.equal(await c.got, a, "the waiting request gets the connection its exchange freed");
  assert.equal(pool.waitingCount, 0);
});

test("RoutePool at its cap: a withdrawn request is skipped, a closed connection frees a slot for a new one, and destroy() turns waiters away", async (t) => {
  const app = await stallingApp(t, "");
  const pool = new RoutePool(app.path, createStats(), { ...DEFAULT_POOL_OPTIONS, maxOpen: 1, maxWaiting: 4, waitMs: 600_000 });
  const only = (await leased(pool).got)!;
  const gone = leased(pool);
  const next = leased(pool, true);
  gone.withdraw();
  assert.equal(pool.waitingCount, 1, "the browser that went away no longer waits");
  only.destroy();
  const fresh = await next.got;
  assert.ok(fresh !== null && fresh !== only, "a new connection in the freed slot");
  assert.equal(gone.given(), false, "the withdrawn request is never called");
  const last = leased(pool);
  pool.destroy();
  assert.equal(await last.got, null, "the route went: waiters are turned away");
});

test("RoutePool at its cap: a request that waits longer than waitMs is turned away", async (t) => {
  const app = await stallingApp(t, "");
  const pool = new RoutePool(app.path, createStats(), { ...DEFAULT_POOL_OPTIONS, maxOpen: 1, maxWaiting: 4, waitMs: 1 });
  await leased(pool).got;
  assert.equal(await leased(pool).got, null, "turned away by the once-a-second sweep");
  pool.destroy();
});

test("RoutePool after a burst: idle connections beyond the most recently used few close once unused for a while, the warm ones stay", async (t) => {
  const app = await stallingApp(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  const pool = new RoutePool(app.path, createStats());
  t.after(() => pool.destroy());
  // A burst: WARM_IDLE + 3 requests at once, each on a new connection, then all of them idle, released in order.
  const burst = WARM_IDLE + 3;
  const upstreams = (await Promise.all(Array.from({ length: burst }, () => leased(pool).got))).map((u) => u!);
  for (const upstream of upstreams) {
    const done = recorder();
    upstream.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", done);
    upstream.endRequest();
    assert.equal(await done.ended, "end");
  }
  assert.equal(pool.idleCount, burst, "every connection of the burst is idle in the pool");
  // The coarse clock they were parked by (a sweep may move it by a second meanwhile: the margins allow for that).
  const parked = clock.now;
  const sweep = (now: number, which = upstreams): void => { for (const upstream of which) upstream.expire(now); };
  sweep(parked + SPARE_IDLE_MS - 2000);
  assert.equal(pool.idleCount, burst, "spares are kept for a while: a burst may come again");
  sweep(parked + SPARE_IDLE_MS + 1000);
  await until(() => pool.openCount === WARM_IDLE, `${WARM_IDLE} open connections`);
  assert.equal(pool.idleCount, WARM_IDLE, "the spares closed");
  const warm = upstreams.filter((u) => !u.socket.destroyed);
  assert.deepEqual(warm, upstreams.slice(burst - WARM_IDLE), "the connections kept are the last released, the ones reused first");
  sweep(parked + DEFAULT_POOL_OPTIONS.idle - 2000, warm);
  assert.equal(pool.openCount, WARM_IDLE, "the warm ones wait for the whole idle time-out");
  sweep(parked + DEFAULT_POOL_OPTIONS.idle + 1000, warm);
  await until(() => pool.openCount === 0);
});
