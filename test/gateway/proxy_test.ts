/**
 * The proxy between a browser and a raw app socket that sends exactly the
 * bytes each test scripts, malformed ones included: what the browser gets
 * (502, a cut, a re-framed body), and that nothing the app sends out of
 * turn reaches another request.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseDomainPattern } from "../../src/gateway/domains.ts";
import { RoutePool } from "../../src/gateway/pool.ts";
import { RouteTable, type Route } from "../../src/gateway/routes.ts";
import { createStats, type Stats } from "../../src/gateway/stats.ts";
import { hashToken } from "../../src/lib/token.ts";
import { defer, type Cleanup } from "../helpers/cleanup.ts";
import { rawExchange, statusOf } from "../helpers/http.ts";
import { listeningFront, rawApp } from "./_peers.ts";

const TOKEN = "proxy-test-token-0";
const HOST = "raw-ann.localhost";
const COOKIE = `Cookie: authorization=${TOKEN}\r\n`;

/** A listening front end whose one route is the raw app at `path`. */
async function frontTo(t: Cleanup, path: string): Promise<{ port: number; stats: Stats }> {
  const stats = createStats();
  const routes = new RouteTable([parseDomainPattern("{key}-{user}.localhost")]);
  const route: Route = {
    key: "raw", user: "ann", name: "raw", uid: 0, socketPath: path, directory: "", authHash: Buffer.from(hashToken(TOKEN), "hex"),
    hosts: [HOST], created: Date.now(), lastActivity: 0, pool: new RoutePool(path, stats),
  };
  routes.add(route);
  defer(t, () => route.pool.destroy());
  const { port } = await listeningFront(t, { routes, stats, gauges: () => ({ routesTotal: 1, controlConnections: 0, appWaiting: 0, startedAt: Date.now() }) });
  return { port, stats };
}

function get(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${COOKIE}\r\n`;
}

test("a malformed answer from the app is a 502 to the browser, and its connection is not reused", async (t) => {
  for (const bytes of ["HTTP/1.1 2OO OK\r\n\r\n", "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "\u0000\u0001garbage\r\n\r\n"]) {
    const path = await rawApp(t, (socket) => { socket.write(bytes); });
    const { port, stats } = await frontTo(t, path);
    for (let i = 1; i <= 2; i++) {
      const { text } = await rawExchange(port, get("/"), { until: (x) => statusOf(x) !== 0 && x.includes("</html>") });
      assert.equal(statusOf(text), 502, JSON.stringify(bytes));
      assert.equal(stats.broken, i);
    }
    assert.equal(stats.upstreamReuses, 0, "each request had a new connection to the app");
  }
});

test("an app that cuts its answer short cuts the browser's response, never passes it off as complete", async (t) => {
  const path = await rawApp(t, (socket) => { socket.end("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten.."); });
  const { port } = await frontTo(t, path);
  const { text, timedOut } = await rawExchange(port, get("/"));
  assert.equal(timedOut, false, "the browser connection is closed");
  assert.equal(statusOf(text), 200);
  assert.ok(text.endsWith("only ten.."), "what came is passed on, and the connection ends short of the 100 bytes announced");
});

test("a chunked answer with broken framing is cut after what was valid", async (t) => {
  const path = await rawApp(t, (socket) => { socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nXYZ\r\n"); });
  const { port } = await frontTo(t, path);
  const { text, timedOut } = await rawExchange(port, get("/"));
  assert.equal(timedOut, false);
  assert.equal(statusOf(text), 200);
  assert.match(text, /\r\n\r\n5\r\nhello\r\n$/, "the valid chunk, then the end of the connection without the last chunk");
});

test("bytes an app sends after its answer never reach the browser's next request", async (t) => {
  const path = await rawApp(t, (socket, _head, n) => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreq-${n}\n` + "HTTP/1.1 200 OK\r\nX-Forged: yes\r\nContent-Length: 6\r\n\r\nforged");
  });
  const { port } = await frontTo(t, path);
  const { text } = await rawExchange(port, get("/a") + get("/b"), { until: (x) => x.split("req-").length === 3 });
  assert.doesNotMatch(text, /forged|X-Forged/i);
  assert.match(text, /req-0\n[\s\S]*req-1\n$/, "each request got its own answer, each on a fresh connection to the app");
});

test("a close-delimited HTTP/1.0 answer reaches an HTTP/1.1 browser chunked, and a bodiless status as is", async (t) => {
  const path = await rawApp(t, (socket, head) => {
    if (head.startsWith("GET /old")) socket.end("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
    else socket.write("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n");
  });
  const { port } = await frontTo(t, path);
  const old = await rawExchange(port, get("/old"), { until: (x) => x.endsWith("0\r\n\r\n") });
  assert.match(old.text, /^HTTP\/1\.1 200 OK\r\nContent-Type: text\/plain\r\nTransfer-Encoding: chunked\r\n/);
  assert.match(old.text, /\r\n\r\nd\r\nuntil the end\r\n0\r\n\r\n$/);
  const cached = await rawExchange(port, get("/cached"), { until: (x) => x.includes("\r\n\r\n") });
  assert.match(cached.text, /^HTTP\/1\.1 304 Not Modified\r\nETag: "x"\r\nContent-Length: 99\r\n\r\n$/, "no body follows a 304, whatever its Content-Length");
});

test("an app that answers before the request body has arrived gets the browser's connection closed after its answer", async (t) => {
  const path = await rawApp(t, (socket) => { socket.write("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!"); }, true);
  const { port } = await frontTo(t, path);
  const { text, timedOut } = await rawExchange(port, `POST /up HTTP/1.1\r\nHost: ${HOST}\r\n${COOKIE}Content-Length: 1000000\r\n\r\n` + "x".repeat(1000));
  assert.equal(timedOut, false, "the connection is closed: the rest of the body would otherwise be read as the next request");
  assert.equal(statusOf(text), 413);
  assert.match(text, /\r\nConnection: close\r\n/);
});
