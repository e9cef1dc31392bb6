/**
 * One app connection (`Upstream`) against raw app sockets that send exactly
 * the bytes each test scripts, malformed ones included: what is refused,
 * what is delivered, and that bytes read into the buffer all app connections
 * share are never seen overwritten by another connection's read.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RoutePool } from "../../src/gateway/pool.ts";
import { createStats } from "../../src/gateway/stats.ts";
import { SHARED_VIEW_LIMIT, type ExchangeHandler, type Upstream } from "../../src/gateway/upstream.ts";
import type { ResponseHead } from "../../src/gateway/http1.ts";
import { rawApp } from "./_peers.ts";

/** What an exchange saw: its head, its body (chunks kept as the contract allows), and how it ended. */
interface Seen {
  head: ResponseHead | null;
  chunks: Buffer[];
  ended: Promise<string>;
  /** Resolves when `n` body bytes have arrived. */
  bytes(n: number): Promise<void>;
}

/** A handler that keeps what it is given, copying small chunks as the contract asks (see SHARED_VIEW_LIMIT). */
function keeper(): ExchangeHandler & Seen {
  let settle!: (how: string) => void;
  const waiters: Array<[number, () => void]> = [];
  let received = 0;
  const seen: ExchangeHandler & Seen = {
    head: null,
    chunks: [],
    ended: new Promise<string>((resolve) => { settle = resolve; }),
    bytes: (n) => new Promise((resolve) => { if (received >= n) resolve(); else waiters.push([n, resolve]); }),
    onResponseHead: (head) => { seen.head = head; },
    onResponseData: (chunk) => {
      seen.chunks.push(chunk.length > SHARED_VIEW_LIMIT ? chunk : Buffer.from(chunk));
      received += chunk.length;
      for (const [n, resolve] of waiters) if (received >= n) resolve();
      return true;
    },
    onResponseEnd: () => settle("end"),
    onUpstreamDrain: () => {},
    onUpstreamError: (err, retryable, started) => settle(`error ${err.message}${retryable ? " (retryable)" : ""}${started ? " (started)" : ""}`),
  };
  return seen;
}

/** Sends GET / on a new connection of a pool for `path`; returns the connection and what its exchange sees. */
function get(pool: RoutePool, method = "GET"): { upstream: Upstream; seen: ExchangeHandler & Seen } {
  const upstream = pool.connect();
  const seen = keeper();
  upstream.request(`${method} / HTTP/1.1\r\nHost: x\r\n\r\n`, method, seen);
  upstream.endRequest();
  return { upstream, seen };
}

/** Bytes 0, 1, ... 250, 0, 1, ... */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

test("Upstream refuses malformed response heads from an app", async (t) => {
  const bad: Array<[string, RegExp]> = [
    ["HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", /conflicting Content-Length/],
    ["HTTP/2 200 OK\r\n\r\n", /invalid status line/],
    ["HTTP/1.1 200 OK\r\n Folded: yes\r\n\r\n", /invalid header line/],
    ["HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", /invalid header line/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", /unsupported Transfer-Encoding/],
    ["HTTP/1.1 200 OK\r\nX-Big: " + "x".repeat(70_000), /response head larger than 65536 bytes/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", /invalid chunk size \(started\)/],
    ["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", /in the middle of a response \(started\)/],
    ["", /without a response/],
  ];
  for (const [bytes, expected] of bad) {
    const path = await rawApp(t, (socket) => { socket.end(bytes); });
    const { seen } = get(new RoutePool(path, createStats()));
    assert.match(await seen.ended, expected, JSON.stringify(bytes.slice(0, 60)));
  }
});

test("Upstream delivers a head that trickles in a byte at a time while other connections read, intact (shared read buffer)", async (t) => {
  const body = pattern(3000);
  const response = Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\nX-Long: " + "y".repeat(500) + "\r\nContent-Length: 3000\r\n\r\n"), body]);
  const slow = await rawApp(t, (socket) => {
    let i = 0;
    const next = (): void => {
      if (i < response.length) socket.write(response.subarray(i, ++i), () => setImmediate(next));
    };
    next();
  });
  const busy = await rawApp(t, (socket) => { socket.write("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + "z".repeat(5000)); });
  const busyPool = new RoutePool(busy, createStats());
  const { seen } = get(new RoutePool(slow, createStats()));
  // Another app connection's responses land in the shared buffer while the slow head is still arriving.
  let others = 0;
  const more = async (): Promise<void> => {
    while (seen.head === null && others < 2000) {
      const other = get(busyPool);
      assert.equal(await other.seen.ended, "end");
      others++;
    }
  };
  await Promise.all([more(), seen.ended]);
  assert.equal(await seen.ended, "end");
  assert.equal(seen.head?.head.includes("X-Long: " + "y".repeat(500) + "\r\n"), true, "the head is whole");
  assert.ok(Buffer.concat(seen.chunks).equals(body), "and so is the body");
  assert.ok(others > 0, "other connections read meanwhile");
});

test("Upstream hands over a large chunk of the shared read buffer as the handler's own to keep", async (t) => {
  const size = 4 * SHARED_VIEW_LIMIT;
  const body = pattern(size);
  const big = await rawApp(t, (socket) => { socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`), body])); });
  const busy = await rawApp(t, (socket) => { socket.write("HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n" + "z".repeat(60_000)); });
  const { seen } = get(new RoutePool(big, createStats()));
  assert.equal(await seen.ended, "end");
  // The kept chunks must survive other connections' reads into the shared buffer.
  const busyPool = new RoutePool(busy, createStats());
  for (let i = 0; i < 20; i++) assert.equal(await get(busyPool).seen.ended, "end");
  assert.ok(Buffer.concat(seen.chunks).equals(body), "the kept chunks still hold the body");
});

test("Upstream reads a long body into buffers of its own, and an HTTP/1.0 close-delimited one to the end", async (t) => {
  const size = 3 * 1024 * 1024;
  const body = pattern(size);
  const path = await rawApp(t, (socket, _head, n) => {
    if (n === 0) socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`), body]));
    else socket.end(Buffer.concat([Buffer.from("HTTP/1.0 200 OK\r\n\r\n"), body]));
  });
  const pool = new RoutePool(path, createStats());
  const first = get(pool);
  assert.equal(await first.seen.ended, "end");
  assert.ok(Buffer.concat(first.seen.chunks).equals(body));
  assert.equal(first.seen.head?.framing, "length");
  const second = keeper();
  first.upstream.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", second);
  first.upstream.endRequest();
  assert.equal(await second.ended, "end");
  assert.equal(second.head?.framing, "close");
  assert.ok(Buffer.concat(second.chunks).equals(body));
});

test("Upstream skips interim responses, and never reuses a connection that sent more than it was asked for", async (t) => {
  const path = await rawApp(t, (socket) => {
    socket.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nX-Forged: 1\r\nContent-Length: 0\r\n\r\n");
  });
  const stats = createStats();
  const pool = new RoutePool(path, stats);
  const { upstream, seen } = get(pool);
  assert.equal(await seen.ended, "end");
  assert.equal(seen.head?.head, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
  assert.equal(Buffer.concat(seen.chunks).toString(), "ok");
  await new Promise<void>((resolve) => { if (upstream.socket.destroyed) resolve(); else upstream.socket.once("close", () => resolve()); });
  assert.equal(pool.idleCount, 0, "the connection that sent a second response is not kept");
});

test("Upstream reports a reused connection the app closed while idle as retryable", async (t) => {
  const path = await rawApp(t, (socket, _head, n) => {
    if (n === 0) socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    else socket.destroy();
  });
  const pool = new RoutePool(path, createStats());
  const first = get(pool);
  assert.equal(await first.seen.ended, "end");
  const second = keeper();
  first.upstream.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", second);
  first.upstream.endRequest();
  assert.match(await second.ended, /\(retryable\)$/);
});
