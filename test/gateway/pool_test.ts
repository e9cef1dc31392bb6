/**
 * A route's connection pool against a real app socket that stalls: when the
 * route goes away, requests in flight are told at once (their browsers get
 * a 502 or a cut), instead of waiting for an answer that cannot come.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { RoutePool } from "../../src/gateway/pool.ts";
import { createStats } from "../../src/gateway/stats.ts";
import type { ExchangeHandler } from "../../src/gateway/upstream.ts";
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

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 10));
}

test("RoutePool.destroy() fails an exchange waiting for its response head", async (t) => {
  const app = await stallingApp(t, "");
  const stats = createStats();
  const pool = new RoutePool(app.path, stats);
  const handler = recorder();
  pool.acquire().request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", handler);
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
  pool.acquire().request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", handler);
  await until(() => head);
  pool.destroy();
  assert.equal(await handler.ended, "error EGONE after the head");
});
