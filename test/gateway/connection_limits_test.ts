/**
 * Refusals at the connection caps are answered, not reset: the 503 goes out,
 * the gateway stops writing and reads (and drops) what the browser sends for
 * a bounded time, as nginx's lingering close does; and the refused
 * connections waiting so cannot pile up.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import type { FrontEnd } from "../../src/gateway/front.ts";
import { defer, type Cleanup } from "../helpers/cleanup.ts";
import { statusOf } from "../helpers/http.ts";
import { waitFor } from "../helpers/wait.ts";
import { listeningFront } from "./_peers.ts";

/** A listening front end with these caps; no routes (a refused connection never reaches one). */
function cappedFront(t: Cleanup, maxTotal: number, maxPerAddress: number): Promise<{ front: FrontEnd; port: number }> {
  return listeningFront(t, { connectionCaps: { maxTotal, maxPerAddress } });
}

/** Opens a connection and waits until it is connected. */
async function opened(t: Cleanup, port: number): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  defer(t, () => { socket.destroy(); });
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  return socket;
}

/** Sends a request with a body on a new connection; resolves with what came back and whether the connection was reset. */
function ask(port: number, bytes: string): Promise<{ text: string; reset: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    let reset = false;
    socket.setEncoding("latin1");
    socket.on("data", (c: string) => { text += c; });
    socket.on("error", (err: NodeJS.ErrnoException) => { reset = err.code === "ECONNRESET"; });
    socket.on("close", () => resolve({ text, reset }));
    socket.on("end", () => socket.end());
    socket.write(bytes);
  });
}

const REQUEST = "POST /upload HTTP/1.1\r\nHost: lab-ann.localhost\r\nContent-Length: 30000\r\n\r\n" + "x".repeat(30000);

test("after a flood from one address, every refused request from it is answered 503 with Retry-After, not reset (regression)", async (t) => {
  const { port } = await cappedFront(t, 64, 8);
  // The flood: the address's own slots, then many connections beyond them that are refused and never close.
  for (let i = 0; i < 8; i++) await opened(t, port);
  const flood: Socket[] = [];
  for (let i = 0; i < 200; i++) flood.push(await opened(t, port));
  const answers = await Promise.all(Array.from({ length: 20 }, () => ask(port, REQUEST)));
  for (const [i, a] of answers.entries()) {
    assert.equal(a.reset, false, `request ${i} was reset`);
    assert.equal(statusOf(a.text), 503, `request ${i}: ${JSON.stringify(a.text.slice(0, 80))}`);
    assert.match(a.text, /\r\nRetry-After: [0-9]+\r\n/);
  }
});

test("refused connections that wait to close are bounded in number and in time", async (t) => {
  const { front, port } = await cappedFront(t, 8, 2);
  for (let i = 0; i < 2; i++) await opened(t, port);
  for (let i = 0; i < 50; i++) await opened(t, port);
  const open = (): Promise<number> => new Promise((resolve, reject) => front.server.getConnections((err, n) => err ? reject(err) : resolve(n)));
  assert.ok(await open() <= 2 + 8, `at most as many refused connections wait as the total cap allows: ${await open()} open`);
  assert.ok(await waitFor(async () => await open() === 2), "the refused ones are closed after a while though their browser never closes");
  assert.equal(front.connections, 2);
});
