/**
 * The websocket frame follower that tells browser use from keep-alive
 * frames, fed with frames split at every byte.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { WebSocketActivity } from "../../src/gateway/activity.ts";
import { encodeFrame } from "../helpers/websocket.ts";

const PING = 9, PONG = 10, CLOSE = 8, TEXT = 1, BINARY = 2;

/** Feeds `bytes` in pieces of `size` bytes; returns what each piece was judged. */
function feed(scanner: WebSocketActivity, bytes: Buffer, size: number): boolean[] {
  const out: boolean[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(scanner.scan(bytes.subarray(i, i + size)));
  return out;
}

test("WebSocketActivity: ping, pong and close frames are not activity, however they are split", () => {
  const control = Buffer.concat([encodeFrame(PING, Buffer.from("are you there"), true), encodeFrame(PONG, Buffer.alloc(125, 1), true),
    encodeFrame(PING, Buffer.alloc(0), true), encodeFrame(CLOSE, Buffer.from([3, 232]), true)]);
  for (const size of [1, 2, 3, 7, 64, control.length]) {
    assert.deepEqual(feed(new WebSocketActivity(), control, size).filter(Boolean), [], `pieces of ${size}`);
  }
});

test("WebSocketActivity: text, binary and continuation frames are activity, with 7-, 16- and 64-bit lengths, between control frames", () => {
  for (const length of [0, 5, 125, 126, 300, 65_535, 65_536, 200_000]) {
    const bytes = Buffer.concat([encodeFrame(PING, Buffer.from("p"), true), encodeFrame(BINARY, Buffer.alloc(length, 7), true), encodeFrame(PONG, Buffer.from("q"), true)]);
    const scanner = new WebSocketActivity();
    assert.equal(scanner.scan(bytes), true, `one chunk, ${length} bytes`);
    // Split so that the data frame falls in the middle piece alone: only that piece is activity.
    const ping = encodeFrame(PING, Buffer.from("p"), true).length;
    const data = encodeFrame(BINARY, Buffer.alloc(length, 7), true).length;
    const split = new WebSocketActivity();
    assert.deepEqual([split.scan(bytes.subarray(0, ping)), split.scan(bytes.subarray(ping, ping + data)), split.scan(bytes.subarray(ping + data))], [false, true, false], `${length} bytes`);
  }
  const fragmented = Buffer.concat([encodeFrame(TEXT & 0x0f, Buffer.from("hel"), true), encodeFrame(0, Buffer.from("lo"), true)]);
  assert.ok(feed(new WebSocketActivity(), fragmented, 1).some(Boolean));
  // Unmasked frames (a server's, or a broken client's) are followed too.
  assert.deepEqual(feed(new WebSocketActivity(), Buffer.concat([encodeFrame(PING, Buffer.alloc(3), false), encodeFrame(TEXT, Buffer.from("x"), false)]), 5), [false, true]);
});
