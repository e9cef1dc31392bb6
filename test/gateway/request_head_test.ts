import assert from "node:assert/strict";
import { test } from "node:test";
import { isRefusal, LINE_STRIDE, parseRequestHead, type RequestHead } from "../../src/gateway/request_head.ts";

function ok(text: string): RequestHead {
  const head = parseRequestHead(text);
  if (isRefusal(head)) throw new Error(`refused: ${head.status} ${head.reason}`);
  return head;
}

/** The field lines of `head` as [name, value, ...], values without surrounding whitespace. */
function fields(head: RequestHead): string[] {
  const out: string[] = [];
  for (let i = 0; i < head.lines.length; i += LINE_STRIDE) out.push(head.text.slice(head.lines[i], head.lines[i + 1]), head.text.slice(head.lines[i + 2], head.lines[i + 3]));
  return out;
}

test("parseRequestHead() reads method, target, version, host and framing", () => {
  const head = ok("POST /up?x=1 HTTP/1.1\r\nHost: Lab-Ann.Example.org\r\nContent-Length: 12\r\nX-A:  spaced  ");
  assert.equal(head.method, "POST");
  assert.equal(head.target, "/up?x=1");
  assert.equal(head.http11, true);
  assert.equal(head.host, "lab-ann.example.org");
  assert.equal(head.contentLength, 12);
  assert.equal(head.chunked, false);
  assert.equal(head.close, false);
  assert.deepEqual(fields(head), ["Host", "Lab-Ann.Example.org", "Content-Length", "12", "X-A", "spaced"]);
  assert.equal(ok("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked").chunked, true);
  assert.equal(ok("GET / HTTP/1.0\r\nHost: a").close, true);
  assert.equal(ok("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive").close, false);
  assert.equal(ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: close").close, true);
});

test("parseRequestHead() takes an absolute-form target's authority as the host (RFC 9112 3.2.2), and HTTP/1.2 as 1.1", () => {
  const head = ok("GET http://Lab-Ann.Example.org:8888/x?y=1 HTTP/1.1\r\nHost: other.example\r\nX-A: b");
  assert.equal(head.target, "/x?y=1");
  assert.equal(head.host, "lab-ann.example.org:8888");
  assert.equal(head.authority, "Lab-Ann.Example.org:8888", "the app is told the same host the gateway routed by (see buildForwardHead)");
  assert.equal(ok("GET https://a HTTP/1.1\r\nHost: a").target, "/");
  assert.equal(ok("GET HTTP://a?q HTTP/1.1\r\nHost: a").target, "/?q");
  assert.equal(ok("GET / HTTP/1.2\r\nHost: a").http11, true);
});

test("parseRequestHead() knows upgrades, Expect and fields named in Connection, but never framing ones", () => {
  const head = ok("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X-Secret, Host, Content-Length\r\nUpgrade: websocket\r\nExpect: 100-continue");
  assert.equal(head.upgrade, "websocket");
  assert.equal(head.expectContinue, true);
  assert.deepEqual([...head.hopByHop!], ["x-secret"]);
  assert.equal(ok("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket").upgrade, null, "Upgrade without Connection: upgrade is not one");
});

test("parseRequestHead() refuses what RFC 9112 says a server must not accept", () => {
  const cases: Array<[string, number]> = [
    ["GET / HTTP/1.1", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nHost: b", 400],
    ["GET / HTTP/1.1\r\nHost: a/b", 400],
    ["GET / HTTP/1.1\r\nHost: u@a", 400],
    ["GET / HTTP/1.1\r\nHost: ", 400],
    ["GET http://u@a/ HTTP/1.1\r\nHost: a", 400],
    ["GET http:///x HTTP/1.1\r\nHost: a", 400],
    ["GET ftp://a/ HTTP/1.1\r\nHost: a", 400],
    ["GET http://a/ HTTP/1.1", 400],
    ["OPTIONS * HTTP/1.1\r\nHost: a", 400],
    ["GET /a#b HTTP/1.1\r\nHost: a", 400],
    ["GET /a b HTTP/1.1\r\nHost: a", 400],
    ["GET /\u00e9 HTTP/1.1\r\nHost: a", 400],
    ["GET / HTTP/2.0\r\nHost: a", 505],
    ["GET / HTTP/1.1\r\nHost: a\r\n folded", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nX : y", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nX: a\rb", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nX: a\nb", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nX: a\0b", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked", 400],
    ["GET / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked", 501],
    ["GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 501],
    ["GET / HTTP/1.1\r\nHost: a\r\nExpect: something", 417],
    ["CONNECT a:443 HTTP/1.1\r\nHost: a:443", 501],
    ["GET / HTTP/1.1\r\nHost: a\r\n" + Array.from({ length: 100 }, (_, i) => `X${i}: v`).join("\r\n"), 431],
  ];
  for (const [text, status] of cases) {
    const head = parseRequestHead(text);
    assert.ok(isRefusal(head), JSON.stringify(text));
    assert.equal(head.status, status, JSON.stringify(text));
  }
});
