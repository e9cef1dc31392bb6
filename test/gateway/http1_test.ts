import assert from "node:assert/strict";
import { test } from "node:test";
import { ChunkedDecoder, parseResponseHead } from "../../src/gateway/http1.ts";

test("parseResponseHead() frames by Content-Length and drops hop-by-hop fields", () => {
  const head = parseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2", "GET");
  assert.equal(head.framing, "length");
  assert.equal(head.length, 5);
  assert.equal(head.keepAlive, true);
  assert.equal(head.keepAliveTimeoutMs, 5000);
  assert.equal(head.head, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n");
});

test("parseResponseHead() knows bodyless responses, chunked, close-delimited and HTTP/1.0", () => {
  assert.equal(parseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 5", "HEAD").framing, "none");
  assert.equal(parseResponseHead("HTTP/1.1 304 Not Modified", "GET").framing, "none");
  const chunked = parseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", "GET");
  assert.equal(chunked.framing, "chunked");
  assert.equal(chunked.head, "HTTP/1.1 200 OK\r\n");
  const close = parseResponseHead("HTTP/1.1 200 OK", "GET");
  assert.equal(close.framing, "close");
  assert.equal(close.keepAlive, false);
  assert.equal(parseResponseHead("HTTP/1.0 200 OK\r\nContent-Length: 1", "GET").keepAlive, false);
  assert.equal(parseResponseHead("HTTP/1.1 200\r\nContent-Length: 1", "GET").head, "HTTP/1.1 200 \r\nContent-Length: 1\r\n");
  assert.equal(parseResponseHead("HTTP/1.0 404 Gone Away\r\nContent-Length:1\r\nX-A:  b ", "GET").head, "HTTP/1.1 404 Gone Away\r\nContent-Length: 1\r\nX-A: b\r\n",
    "the browser gets HTTP/1.1 and every field as \"name: value\"");
});

test("parseResponseHead() refuses malformed heads", () => {
  for (const bad of [
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2",
    "HTTP/1.1 200 OK\r\nContent-Length: -1",
    "HTTP/2 200 OK",
    "HTTP/1.1 99 Low",
    "HTTP/1.1 200 OK\r\n Folded: yes",
    "HTTP/1.1 200 OK\r\nBad Name: x",
    "HTTP/1.1 200 OK\r\nX: a\0b",
    "HTTP/1.1 200 OK\r\nX: a\rb",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
  ]) assert.throws(() => parseResponseHead(bad, "GET"), /Cannot forward response from app/, JSON.stringify(bad));
});

test("ChunkedDecoder decodes split input and finds the end after trailers", () => {
  const body = Buffer.from("5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT");
  for (let split = 1; split < body.length - 4; split++) {
    const d = new ChunkedDecoder();
    const out: Buffer[] = [];
    const first = d.decode(body.subarray(0, split), 0, (b) => out.push(Buffer.from(b)));
    const rest = body.subarray(split);
    const end = first === -1 ? d.decode(rest, 0, (b) => out.push(Buffer.from(b))) : first;
    assert.equal(Buffer.concat(out).toString(), "hello world", `split at ${split}`);
    assert.equal(first === -1 ? rest.subarray(end).toString() : "", first === -1 ? "NEXT" : "");
    assert.equal(d.done, true);
  }
});

test("ChunkedDecoder refuses bad sizes, missing CRLFs and huge sizes", () => {
  for (const bad of ["zz\r\n", "5\nhello", "3\r\nabcX\r\n", "1234567890abc\r\n", "\r\n", "0\r\n\n"]) {
    assert.throws(() => new ChunkedDecoder().decode(Buffer.from(bad), 0, () => {}), /Cannot forward response/, JSON.stringify(bad));
  }
});
