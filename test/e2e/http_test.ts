/**
 * The HTTP front end end to end: a gateway running as `conductor`, a route
 * registered by alice's client, requests from a browser's point of view.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Agent, get as httpGet } from "node:http";
import { Readable } from "node:stream";
import { before, describe, it } from "node:test";
import { currentAccount } from "../helpers/accounts.ts";
import { suiteCleanup } from "../helpers/cleanup.ts";
import { isRoot } from "../helpers/env.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { rawExchange, request, statusOf } from "../helpers/http.ts";
import { register, type Registration } from "../helpers/register.ts";
import { openWebSocket } from "../helpers/websocket.ts";
import { pattern } from "../fixtures/app.ts";

const TOKEN = "0123456789abcdefghijklmnopqrstuv";
const COOKIE = `authorization=${TOKEN}`;

describe("gateway HTTP front end", () => {
  let gw: TestGateway;
  let reg: Registration;
  let host: string;
  const cleanup = suiteCleanup();

  before(async () => {
    gw = await startGateway(cleanup);
    reg = await register(cleanup, gw.controlPath, { key: "web", token: TOKEN });
    assert.equal(reg.reply.status, "ok", JSON.stringify(reg.reply));
    host = (reg.reply.urls as string[])[0];
    assert.equal(host, gw.host("web", isRoot ? "alice" : currentAccount().name));
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    request({ port: gw.port, host, path, headers: { Cookie: COOKIE, ...headers } });

  it("runs as the unprivileged user conductor", { skip: !isRoot && "not root" }, async () => {
    const status = (await import("node:fs")).readFileSync(`/proc/${gw.process.pid}/status`, "utf8");
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
    assert.notEqual(uid, 0);
    assert.equal(uid, (await import("../helpers/accounts.ts")).account("conductor").uid);
  });

  it("forwards a request with the right cookie and refuses one without (403) or with a wrong one", async () => {
    const ok = await get("/hello");
    assert.equal(ok.status, 200);
    assert.equal(ok.text, "hello\n");
    const none = await request({ port: gw.port, host, path: "/hello" });
    assert.equal(none.status, 403);
    assert.match(none.text, /authorization link/);
    const wrong = await get("/hello", { Cookie: "authorization=nope" });
    assert.equal(wrong.status, 403);
  });

  it("accepts the token when a sibling site tossed in another authorization cookie", async () => {
    const res = await get("/hello", { Cookie: `authorization=tossed; ${COOKIE}` });
    assert.equal(res.status, 200);
  });

  it("removes the authorization cookie and passes other cookies unchanged", async () => {
    const res = await get("/echo", { Cookie: `theme=dark; ${COOKIE}; _xsrf="2|ab|cd"` });
    const echo = JSON.parse(res.text) as { rawHeaders: string[] };
    const cookies = headerValues(echo.rawHeaders, "cookie");
    assert.deepEqual(cookies, ['theme=dark; _xsrf="2|ab|cd"']);
    const only = JSON.parse((await get("/echo")).text) as { rawHeaders: string[] };
    assert.deepEqual(headerValues(only.rawHeaders, "cookie"), [], "no empty Cookie header is left");
  });

  it("sets X-Forwarded-For, -Proto and -Host and replaces spoofed ones", async () => {
    const res = await get("/echo", { "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.example" });
    const echo = JSON.parse(res.text) as { rawHeaders: string[] };
    assert.deepEqual(headerValues(echo.rawHeaders, "x-forwarded-for"), ["127.0.0.1"]);
    assert.deepEqual(headerValues(echo.rawHeaders, "x-forwarded-proto"), ["http"]);
    assert.deepEqual(headerValues(echo.rawHeaders, "x-forwarded-host"), [host]);
    assert.deepEqual(headerValues(echo.rawHeaders, "host"), [host], "the app sees the public Host");
  });

  it("answers 404 for an unknown host and an unknown /_conductor path", async () => {
    assert.equal((await request({ port: gw.port, host: "nothing-here.localhost", path: "/" })).status, 404);
    assert.equal((await get("/_conductor/nope")).status, 404);
  });

  it("answers other methods on /_conductor with 405 and what they allow", async () => {
    const res = await request({ port: gw.port, host, path: "/_conductor/status", method: "POST", body: "" });
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, "GET, HEAD");
  });

  it("serves /_conductor/status with the original's fields and /_conductor/metrics", async () => {
    const status = JSON.parse((await get("/_conductor/status")).text) as Record<string, number>;
    for (const field of ["requestTotal", "requestActive", "unauthorized", "noroute", "broken", "routesTotal"]) {
      assert.equal(typeof status[field], "number", field);
    }
    assert.ok(status.routesTotal >= 1);
    assert.ok(status.unauthorized >= 1);
    assert.ok(status.connectionActive >= 1, "this very request's connection is open");
    assert.ok(status.upstreamOpen >= 1, "earlier requests left a keep-alive connection to the app");
    const metrics = await get("/_conductor/metrics");
    assert.match(String(metrics.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
    assert.match(metrics.text, /^# TYPE conductor_request_total counter$/m);
    assert.match(metrics.text, /^conductor_routes \d+$/m);
    assert.match(metrics.text, /^# TYPE conductor_upstream_open gauge\nconductor_upstream_open \d+$/m);
    assert.match(metrics.text, /^# TYPE conductor_connection_active gauge\nconductor_connection_active [1-9]\d*$/m);
  });

  it("sets the cookie from the auth link and redirects only to same-origin paths", async () => {
    const res = await request({ port: gw.port, host, path: `/_conductor/auth/${TOKEN}?next=/lab%3Ftree%3D1` });
    assert.equal(res.status, 302);
    assert.equal(res.headers.location, "/lab?tree=1");
    assert.equal(res.headers["cache-control"], "no-store");
    assert.deepEqual(res.headers["set-cookie"], [`authorization=${TOKEN}; HttpOnly; Path=/; SameSite=Lax`]);
    for (const next of ["//evil.example/", "http://evil.example/", "/\\evil.example", "%2F%2Fevil.example", "javascript:alert(1)"]) {
      const r = await request({ port: gw.port, host, path: `/_conductor/auth/${TOKEN}?next=${encodeURIComponent(next)}` });
      assert.equal(r.headers.location, "/", next);
    }
    const bad = await request({ port: gw.port, host, path: `/_conductor/auth/a%3Bb` });
    assert.equal(bad.status, 400, "a token that cannot be a cookie value is refused");
  });

  it("carries a 1 MiB response and a 10 MiB upload intact", async () => {
    const res = await get("/bytes?n=1048576");
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 1048576);
    assert.ok(res.body.equals(pattern(1048576)));
    const chunked = await get("/chunked?n=300000");
    assert.equal(chunked.headers["transfer-encoding"], "chunked");
    assert.ok(chunked.body.equals(pattern(300000)));

    const upload = pattern(10 * 1048576);
    const up = await request({ port: gw.port, host, path: "/upload", method: "POST", headers: { Cookie: COOKIE }, body: upload });
    assert.deepEqual(JSON.parse(up.text), { length: upload.length, sha256: createHash("sha256").update(upload).digest("hex") });
    // A chunked upload (no Content-Length) arrives the same.
    const streamed = await request({ port: gw.port, host, path: "/upload", method: "POST", headers: { Cookie: COOKIE }, body: Readable.from([upload.subarray(0, 5000), upload.subarray(5000)]) });
    assert.deepEqual(JSON.parse(streamed.text), { length: upload.length, sha256: createHash("sha256").update(upload).digest("hex") });
  });

  it("reuses an app connection whose last response ended while the browser read slowly (regression)", async () => {
    // The gateway pauses the app connection when the browser falls behind; a
    // response that ends in that state once left the pooled connection paused.
    for (let i = 0; i < 3; i++) {
      const slow = await new Promise<number>((resolve, reject) => {
        const req = httpGet({ host: "127.0.0.1", port: gw.port, path: "/bytes?n=8388608", headers: { Host: host, Cookie: COOKIE }, agent: false }, (res) => {
          res.pause();
          let length = 0;
          setTimeout(() => { res.on("data", (c: Buffer) => { length += c.length; }); res.resume(); }, 300);
          res.on("end", () => resolve(length));
          res.on("error", reject);
        });
        req.on("error", reject);
      });
      assert.equal(slow, 8388608);
      assert.equal((await get("/hello")).status, 200);
    }
  });

  it("keeps one app connection for many requests on one browser connection", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = JSON.parse((await request({ port: gw.port, host, path: "/stats", headers: { Cookie: COOKIE }, agent })).text).connections as number;
      for (let i = 0; i < 20; i++) {
        assert.equal((await request({ port: gw.port, host, path: "/hello", headers: { Cookie: COOKIE }, agent })).status, 200);
      }
      const afterCount = JSON.parse((await request({ port: gw.port, host, path: "/stats", headers: { Cookie: COOKIE }, agent })).text).connections as number;
      assert.equal(afterCount, before, "no new app connection for 20 sequential requests");
    } finally {
      agent.destroy();
    }
  });

  it("passes a websocket through both ways, and refuses the upgrade without the cookie", async () => {
    const ws = await openWebSocket({ port: gw.port, host, path: "/ws", headers: { Cookie: COOKIE } });
    ws.send("ping through the gateway");
    assert.equal((await ws.receive()).toString(), "ping through the gateway");
    const big = pattern(200_000);
    ws.send(big);
    assert.ok((await ws.receive()).equals(big));
    ws.close();
    await assert.rejects(openWebSocket({ port: gw.port, host, path: "/ws" }), /403 Forbidden/);
  });

  it("answers every malformed or smuggling head with a clean 4xx and keeps serving", async () => {
    const cases: Array<[string, string, number]> = [
      ["conflicting Content-Length", `POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`, 400],
      ["Content-Length and Transfer-Encoding", `POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
      ["unknown transfer coding", `POST /upload HTTP/1.1\r\nHost: ${host}\r\nCookie: ${COOKIE}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, 501],
      ["gzip then chunked", `POST /upload HTTP/1.1\r\nHost: ${host}\r\nCookie: ${COOKIE}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, 501],
      ["Transfer-Encoding in HTTP/1.0", `POST /upload HTTP/1.0\r\nHost: ${host}\r\nCookie: ${COOKIE}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
      ["space before colon", `POST /upload HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n`, 400],
      ["NUL in a header", `GET /hello HTTP/1.1\r\nHost: ${host}\r\nX-A: a\0b\r\n\r\n`, 400],
      ["bare CR in a header", `GET /hello HTTP/1.1\r\nHost: ${host}\r\nX-A: a\rb\r\n\r\n`, 400],
      ["obsolete line folding", `GET /hello HTTP/1.1\r\nHost: ${host}\r\nX-A: a\r\n b\r\n\r\n`, 400],
      ["two Host headers", `GET /hello HTTP/1.1\r\nHost: ${host}\r\nHost: other.example\r\n\r\n`, 400],
      ["no Host in HTTP/1.0", `GET /hello HTTP/1.0\r\n\r\n`, 400],
      ["Host with a path", `GET /hello HTTP/1.1\r\nHost: ${host}/x\r\n\r\n`, 400],
      ["Host with userinfo", `GET /hello HTTP/1.1\r\nHost: user@${host}\r\n\r\n`, 400],
      ["absolute-form target with another Host", `GET http://${host}/hello HTTP/1.1\r\nHost: nowhere.localhost\r\n\r\n`, 403],
      ["absolute-form target with userinfo", `GET http://user@${host}/hello HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 400],
      ["HTTP/2.0 in an HTTP/1 head", `GET /hello HTTP/2.0\r\nHost: ${host}\r\n\r\n`, 505],
      ["1 MB header line", `GET /hello HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${"a".repeat(1 << 20)}\r\n\r\n`, 431],
      ["101 header lines", `GET /hello HTTP/1.1\r\nHost: ${host}\r\n${Array.from({ length: 100 }, (_, i) => `X-H${i}: v\r\n`).join("")}\r\n`, 431],
      ["invalid chunk size", `POST /upload HTTP/1.1\r\nHost: ${host}\r\nCookie: ${COOKIE}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`, 0],
      ["CONNECT", `CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`, 501],
    ];
    for (const [name, bytes, expected] of cases) {
      // Refusals are read as soon as their status line is in; a body error is read until the gateway closes.
      const { text } = await rawExchange(gw.port, bytes, { until: (t) => expected !== 0 && statusOf(t) !== 0 });
      const status = statusOf(text);
      if (expected === 0) {
        // A body error after the request was forwarded: no 2xx, the connection is closed.
        assert.ok(status === 0 || status >= 400, `${name}: got ${status}`);
      } else {
        assert.equal(status, expected, `${name}: ${text.slice(0, 200)}`);
      }
      const ok = await get("/hello");
      assert.equal(ok.status, 200, `still serving after: ${name}`);
    }
  });

  it("forwards a refused upgrade as a response and closes, so a pipelined request never reaches the app unrouted (regression)", async () => {
    const hostile = await register(cleanup, gw.controlPath, { key: "hostile", token: TOKEN });
    const hostileHost = (hostile.reply.urls as string[])[0];
    hostile.process.child.stdin!.write("refuse-upgrades\n");
    await hostile.process.waitForJson((l) => l.event === "refusingUpgrades");
    const { text } = await rawExchange(gw.port,
      `GET /ws HTTP/1.1\r\nHost: ${hostileHost}\r\nCookie: ${COOKIE}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n` +
      `GET /secret HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=someone-elses-token\r\n\r\n`);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\nConnection: close\r\n/i);
    assert.equal(text.split("HTTP/1.1").length - 1, 1, "exactly one response");
    const seen = JSON.parse((await request({ port: gw.port, host: hostileHost, path: "/seen", headers: { Cookie: COOKIE } })).text) as string[];
    assert.ok(!seen.includes("/secret"), `the app saw ${JSON.stringify(seen)}`);
    const withBody = await rawExchange(gw.port,
      `GET /ws HTTP/1.1\r\nHost: ${host}\r\nCookie: ${COOKIE}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello`, { until: (t) => statusOf(t) !== 0 });
    assert.equal(statusOf(withBody.text), 400, "an upgrade request with a body is refused");
    await hostile.end();
  });

  it("never hands stray bytes an app sent on an idle connection to the next request (regression)", async () => {
    for (let i = 0; i < 2; i++) {
      const length = await new Promise<number>((resolve, reject) => {
        httpGet({ host: "127.0.0.1", port: gw.port, path: "/junk-after?n=8388608", headers: { Host: host, Cookie: COOKIE }, agent: false }, (res) => {
          res.pause();
          let n = 0;
          setTimeout(() => { res.on("data", (c: Buffer) => { n += c.length; }); res.resume(); }, 300);
          res.on("end", () => resolve(n));
        }).on("error", reject);
      });
      assert.equal(length, 8388608);
      // The app has written this round's stray bytes (lines are read from the first: count them).
      let strays = 0;
      await reg.process.waitForJson((l) => l.event === "stray" && ++strays === i + 1);
      const next = await get("/hello");
      assert.equal(next.text, "hello\n");
    }
  });

  it("ends a response the app gives before reading the upload at once, and closes that connection (regression)", async () => {
    const started = Date.now();
    const body = Readable.from((function* () { for (let i = 0; i < 1024; i++) yield Buffer.alloc(65536, 1); })());
    const res = await request({ port: gw.port, host, path: "/early", method: "POST", headers: { Cookie: COOKIE }, body }).catch((err: Error) => err);
    if (res instanceof Error) {
      // The browser may see the connection end while it still uploads; what matters is that it did not hang.
      assert.match(res.message, /EPIPE|ECONNRESET|socket hang up/);
    } else {
      assert.equal(res.status, 413);
      assert.equal(res.text, "too large\n");
      assert.equal(res.headers.connection, "close");
    }
    // The body time-out it must not wait for is 60 s.
    assert.ok(Date.now() - started < 30_000, "no wait for a time-out");
    assert.equal((await get("/hello")).status, 200);
  });

  it("never writes an error page into a pipelined response (regression)", async () => {
    const one = `GET /bytes?n=20 HTTP/1.1\r\nHost: ${host}\r\nCookie: ${COOKIE}\r\n\r\n`;
    const { text } = await rawExchange(gw.port, one + one + "GARBAGE\r\n\r\n");
    const bodies = text.split(/HTTP\/1\.1 \d{3} [^\r]*\r\n/).slice(1);
    for (const part of bodies) assert.ok(!part.includes("HTTP/1.1"), "no response inside another");
    assert.ok(bodies.length >= 1);
    assert.equal(statusOf(text), 200);
  });

  it("closes a route's websockets when the route goes away", async () => {
    const temp = await register(cleanup, gw.controlPath, { key: "temporary", token: TOKEN });
    const tempHost = (temp.reply.urls as string[])[0];
    const ws = await openWebSocket({ port: gw.port, host: tempHost, path: "/ws", headers: { Cookie: COOKIE } });
    ws.send("before");
    assert.equal((await ws.receive()).toString(), "before");
    const closed = ws.receive().then(() => "message", () => "closed");
    await temp.end();
    assert.equal(await closed, "closed");
  });

  it("answers 502 when the app does not answer and when it closes without a reply", async () => {
    // A second route whose app we can break.
    const broken = await register(cleanup, gw.controlPath, { key: "broken", token: TOKEN });
    const brokenHost = (broken.reply.urls as string[])[0];
    const hit = () => request({ port: gw.port, host: brokenHost, path: "/hello", headers: { Cookie: COOKIE } });
    assert.equal((await hit()).status, 200);
    broken.process.child.stdin!.write("empty-replies\n");
    await broken.process.waitForJson((l) => l.event === "emptyReplies");
    assert.equal((await hit()).status, 502, "empty reply from the app");
    broken.process.child.stdin!.write("stop-app\n");
    await broken.process.waitForJson((l) => l.event === "appStopped");
    assert.equal((await hit()).status, 502, "socket does not answer");
    const status = JSON.parse((await get("/_conductor/status")).text) as Record<string, number>;
    assert.ok(status.broken >= 2);
  });
});

function headerValues(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) out.push(raw[i + 1]);
  return out;
}
