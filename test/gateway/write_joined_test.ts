/**
 * writeJoined: a response head and its first body bytes (or a chunk and its
 * framing) reach the socket in one call, so that a small response leaves in
 * one segment.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { writeJoined } from "../../src/gateway/connection.ts";

/** A Writable that records what each call into it carried: one entry per write or writev. */
function recorder(highWaterMark = 16 * 1024): { sink: Writable; calls: Buffer[][] } {
  const calls: Buffer[][] = [];
  const sink = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, done) { calls.push([chunk]); done(); },
    writev(chunks, done) { calls.push(chunks.map((c) => c.chunk as Buffer)); done(); },
  });
  return { sink, calls };
}

test("a small body leaves with its head and framing in one write", () => {
  const { sink, calls } = recorder();
  const head = "HTTP/1.1 200 OK\r\nX-Latin: caf\xe9\r\n\r\n";
  assert.equal(writeJoined(sink as never, head + "5\r\n", Buffer.from("hello"), "\r\n"), true);
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0].map((c) => c.toString("latin1")), [head + "5\r\nhello\r\n"], "latin1 head bytes, body, suffix");
});

test("a head without a body is one write too", () => {
  const { sink, calls } = recorder();
  writeJoined(sink as never, "HTTP/1.1 204 No Content\r\n\r\n", null, "");
  assert.deepEqual(calls.map((c) => c.map((b) => b.toString("latin1"))), [["HTTP/1.1 204 No Content\r\n\r\n"]]);
});

test("a large body is not copied: it goes out corked with its framing, in one writev", () => {
  const { sink, calls } = recorder(1 << 20);
  const body = Buffer.alloc(100_000, 0x61);
  writeJoined(sink as never, "186a0\r\n", body, "\r\n");
  assert.equal(calls.length, 1);
  assert.equal(calls[0].length, 3);
  assert.equal(calls[0][1], body, "the body buffer itself, not a copy");
});

test("says when to wait for drain", () => {
  const { sink } = recorder(1024);
  sink.cork();
  assert.equal(writeJoined(sink as never, "", Buffer.alloc(2000), ""), false);
});
