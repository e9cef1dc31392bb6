/**
 * Browser connections of the front end, in process with short time limits:
 * pipelining, half-closes, time limits and the state machine's corners.
 * The route's app is the test app, registered by the fixture client.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, chmodSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { startGateway, type Gateway } from "../../src/server/service.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { suiteCleanup } from "../helpers/cleanup.ts";
import { rawExchange, request, statusOf } from "../helpers/http.ts";
import { register } from "../helpers/register.ts";
import { waitFor } from "../helpers/wait.ts";

const TOKEN = "connection-token";

/** Connects, sends `chunks` with `gapMs` between them, and reports when the server closed (ms), or -1. */
function closedAfter(port: number, first: string, trickle: string, gapMs: number, limitMs: number): Promise<number> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect(port, "127.0.0.1", () => socket.write(first));
    const timer = setInterval(() => { if (!socket.destroyed) socket.write(trickle); }, gapMs);
    const give = setTimeout(() => { clearInterval(timer); socket.destroy(); resolve(-1); }, limitMs);
    socket.on("data", () => {});
    socket.on("error", () => {});
    socket.on("close", () => { clearInterval(timer); clearTimeout(give); resolve(Date.now() - started); });
  });
}

/** How many 404 responses a raw exchange holds. */
function notFounds(text: string): number {
  return text.split("HTTP/1.1 404 Not Found").length - 1;
}

describe("browser connections", () => {
  const cleanup = suiteCleanup();
  let gw: Gateway;
  let port: number;
  let host: string;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "conductor-conn-"));
    chmodSync(dir, 0o755);
    cleanup.after(() => rmSync(dir, { recursive: true, force: true }));
    gw = await startGateway({ port: 0, bind: "127.0.0.1", runtimeDir: dir, stateDir: join(dir, "state"), domains: [], trustForwarded: false,
      frontTimeouts: { headers: 1500, keepAlive: 1500, body: 1500 }, maxRequestBody: 1024 * 1024 }, silentLogger);
    cleanup.after(() => gw.close());
    port = (gw.address as { port: number }).port;
    const reg = await register(cleanup, gw.control.path, { key: "conn", token: TOKEN, user: null });
    host = (reg.reply.urls as string[])[0];
  });

  it("answers thousands of pipelined requests in one write, in order, without deep recursion (regression)", async () => {
    const { text } = await rawExchange(port, `GET / HTTP/1.1\r\nHost: nowhere.localhost\r\n\r\n`.repeat(3000), { until: (t) => notFounds(t) === 3000 });
    assert.equal(notFounds(text), 3000);
    assert.equal((await request({ port, host, path: "/hello", headers: { Cookie: `authorization=${TOKEN}` } })).status, 200);
  });

  it("closes a connection whose request was refused even while the browser keeps sending (regression)", async () => {
    const ms = await closedAfter(port, `POST /upload HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX`, "x", 300, 12_000);
    assert.ok(ms > 0, "the connection is closed");
  });

  it("stops reading what a refused browser keeps sending after a bounded amount", async () => {
    const written = await new Promise<number>((resolve) => {
      // Like a browser uploading, it goes on sending after the answer and the gateway's end of sending.
      const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      const chunk = Buffer.alloc(64 * 1024, 0x78);
      let total = 0;
      let closed = false;
      socket.on("data", () => {});
      socket.on("error", () => {});
      socket.on("close", () => { closed = true; resolve(total); });
      const pump = (): void => {
        while (!closed && total < 64 * 1024 * 1024) {
          total += chunk.length;
          if (!socket.write(chunk)) return void socket.once("drain", pump);
        }
        if (!closed) {
          resolve(total);
          socket.destroy();
        }
      };
      socket.write("BAD REQUEST\r\n\r\n", pump);
    });
    assert.ok(written < 64 * 1024 * 1024, "the gateway closed the connection before the browser had sent 64 MiB of it");
  });

  it("counts empty lines before a request against the head time limit (regression)", async () => {
    const ms = await closedAfter(port, "\r\n", "\r\n", 300, 30_000);
    assert.ok(ms > 0, "the connection is closed although empty lines keep coming");
  });

  it("answers 408 to a head that trickles in (slowloris)", async () => {
    const text = await new Promise<string>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => socket.write(`GET /hello HTTP/1.1\r\nHost: ${host}\r\n`));
      const timer = setInterval(() => { if (!socket.destroyed) socket.write("X"); }, 300);
      let data = "";
      socket.on("data", (c) => { data += c.toString("latin1"); });
      socket.on("error", () => {});
      socket.on("close", () => { clearInterval(timer); resolve(data); });
    });
    assert.equal(statusOf(text), 408);
    assert.match(text, /took too long/);
  });

  it("refuses a body over --max-request-body with 413, by its length or as it arrives", async () => {
    const declared = await rawExchange(port, `POST /upload HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\nContent-Length: 2097152\r\n\r\n`);
    assert.equal(statusOf(declared.text), 413);
    assert.equal(declared.timedOut, false, "the connection is closed");
    const chunk = "100000\r\n" + "x".repeat(0x100000) + "\r\n";
    const streamed = await rawExchange(port, `POST /upload HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n` + chunk + chunk);
    assert.equal(statusOf(streamed.text), 413);
    const small = await request({ port, host, path: "/upload", method: "POST", headers: { Cookie: `authorization=${TOKEN}` }, body: Buffer.alloc(1000) });
    assert.equal(small.status, 200, "a body under the limit passes");
  });

  it("closes idle keep-alive connections after the limit", async () => {
    const ms = await closedAfter(port, `GET /hello HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\n\r\n`, "", 100_000, 30_000);
    assert.ok(ms > 1000, `closed after ${ms} ms, not before the limit of 1500 ms`);
  });

  it("closes a keep-alive connection silently after a body that came with its head, not with a 408 (regression)", async () => {
    const text = await new Promise<string>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => socket.write(`POST /upload HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\nContent-Length: 5\r\n\r\nhello`));
      let data = "";
      socket.setEncoding("latin1");
      socket.on("data", (c: string) => { data += c; });
      socket.on("error", () => {});
      socket.on("close", () => resolve(data));
      setTimeout(() => socket.destroy(), 30_000);
    });
    assert.equal(statusOf(text), 200);
    assert.ok(!text.includes("408"), `nothing but the upload's answer: ${JSON.stringify(text)}`);
  });

  it("keeps an HTTP/1.0 connection that asks for keep-alive, and says so (regression)", async () => {
    const one = `GET /hello HTTP/1.0\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\nConnection: keep-alive\r\n\r\n`;
    const { text } = await rawExchange(port, one + one, { until: (t) => t.split("hello\n").length - 1 === 2 });
    assert.equal(text.split("HTTP/1.1 200").length - 1, 2);
    assert.match(text, /\r\nConnection: keep-alive\r\n/i);
  });

  it("answers a request whose sender half-closed right after it (regression)", async () => {
    const text = await new Promise<string>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => socket.end(`GET /slow?n=200 HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\n\r\n`));
      let data = "";
      socket.on("data", (c) => { data += c.toString("latin1"); });
      socket.on("close", () => resolve(data));
    });
    assert.equal(statusOf(text), 200);
    assert.match(text, /slow\n$/);
  });

  it("never serves bytes that followed a bodiless response to the next request (regression)", async () => {
    const head = `HEAD /head-leak HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\n\r\n`;
    const get = `GET /hello HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\n\r\n`;
    const { text } = await rawExchange(port, head + get, { until: (t) => t.endsWith("hello\n") });
    assert.ok(!text.includes("FORGED") && !text.includes("X-Forged"), text);
    assert.match(text, /hello\n$/);
  });

  it("keeps the framing of a response whose Connection field names Content-Length (regression)", async () => {
    const res = await request({ port, host, path: "/strip-length", headers: { Cookie: `authorization=${TOKEN}` } });
    assert.equal(res.text, "hello");
    assert.equal(res.headers["content-length"], "5");
  });

  it("passes on a response head that arrives before its body, without waiting for the body", async () => {
    const cookie = { Cookie: `authorization=${TOKEN}` };
    const { text, timedOut } = await rawExchange(port, `GET /hold-body HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\n\r\n`,
      { until: (t) => t.includes("\r\n\r\n") });
    assert.equal(timedOut, false, "the head came while the app still holds the body");
    assert.equal(statusOf(text), 200);
    assert.match(text, /\r\nTransfer-Encoding: chunked\r\n/i);
    assert.equal(await request({ port, host, path: "/release", headers: cookie }).then((r) => r.text), "1");
  });

  it("reports requests in progress and adds a Date field to its own responses", async () => {
    const cookie = { Cookie: `authorization=${TOKEN}` };
    const held = request({ port, host, path: "/hold", headers: cookie });
    // The held request is active once the app has it; the status request counts itself.
    assert.ok(await waitFor(async () => (await request({ port, host, path: "/holding", headers: cookie })).text === "1"), "the app holds the request");
    const during = await request({ port, host, path: "/_conductor/status" });
    assert.match(String(during.headers.date), /GMT$/);
    assert.equal(JSON.parse(during.text).requestActive, 2, "the held request and the status request itself");
    await request({ port, host, path: "/release", headers: cookie });
    assert.equal((await held).text, "released\n");
    const after = JSON.parse((await request({ port, host, path: "/_conductor/status" })).text);
    assert.equal(after.requestActive, 1);
  });
});
