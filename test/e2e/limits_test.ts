/**
 * Connection caps of the browser side, on the gateway as user conductor: a
 * connection beyond --max-connections-per-address or --max-connections gets
 * 503 with Retry-After while those already open keep working, and a gateway
 * with few descriptors survives a flood that exhausts them.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import { startGateway } from "../helpers/gateway.ts";
import { rawExchange, request, statusOf } from "../helpers/http.ts";
import { register } from "../helpers/register.ts";
import { waitFor } from "../helpers/wait.ts";

const TOKEN = "limits-token-012345";

/** A keep-alive connection from `localAddress` that asks for /hello, one request at a time. */
async function keptConnection(port: number, host: string, localAddress: string): Promise<{ ask(): Promise<string>; socket: Socket }> {
  const socket = connect({ port, host: "127.0.0.1", localAddress });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let text = "";
  let done: ((answer: string) => void) | null = null;
  socket.setEncoding("latin1");
  socket.on("data", (c: string) => {
    text += c;
    if (done !== null && (text.endsWith("hello\n") || statusOf(text) === 503)) {
      const answer = text;
      text = "";
      done(answer);
    }
  });
  return {
    socket,
    ask: () => new Promise((resolve) => {
      done = resolve;
      socket.write(`GET /hello HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\n\r\n`);
    }),
  };
}

function hello(host: string): string {
  return `GET /hello HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=${TOKEN}\r\n\r\n`;
}

test("a connection beyond --max-connections-per-address or --max-connections gets 503 with Retry-After; open ones keep working", async (t) => {
  const gw = await startGateway(t, { args: ["--max-connections", "4", "--max-connections-per-address", "2"] });
  const reg = await register(t, gw.controlPath, { key: "capped", token: TOKEN });
  const host = (reg.reply.urls as string[])[0];
  const first = await keptConnection(gw.port, host, "127.0.0.1");
  const second = await keptConnection(gw.port, host, "127.0.0.1");
  for (const c of [first, second]) assert.equal(statusOf(await c.ask()), 200);

  const third = await rawExchange(gw.port, hello(host));
  assert.equal(statusOf(third.text), 503, "a third connection from 127.0.0.1");
  assert.match(third.text, /\r\nRetry-After: [0-9]+\r\n/);
  assert.match(third.text, /\r\nConnection: close\r\n/);
  assert.equal(third.timedOut, false, "and it is closed");

  // Two more from another address fill the total cap of four; a fifth, from a third address, is refused.
  const others = [await keptConnection(gw.port, host, "127.0.0.2"), await keptConnection(gw.port, host, "127.0.0.2")];
  for (const c of others) assert.equal(statusOf(await c.ask()), 200);
  const fifth = await keptConnection(gw.port, host, "127.0.0.3");
  assert.equal(statusOf(await fifth.ask()), 503, "beyond the total cap");
  for (const c of [first, second, ...others]) assert.equal(statusOf(await c.ask()), 200, "the open connections are unaffected");

  // A connection that closes frees its slot.
  first.socket.destroy();
  assert.ok(await waitFor(async () => statusOf((await rawExchange(gw.port, hello(host), { until: (x) => statusOf(x) !== 0 })).text) === 200),
    "a new connection gets in once one closed");
  for (const c of [second, ...others, fifth]) c.socket.destroy();
  const status = JSON.parse((await request({ port: gw.port, host, path: "/_conductor/status" })).text) as { connectionRefused: number };
  assert.ok(status.connectionRefused >= 2, `refusals are counted: ${JSON.stringify(status)}`);
});

test("with 64 descriptors, the cap is lowered to fit and a flood beyond it is refused, not fatal; the gateway serves again", { timeout: 120_000 }, async (t) => {
  const gw = await startGateway(t, { wrapper: ["prlimit", "--nofile=64:64", "--"] });
  const warning = await gw.process.waitForJson((l) => typeof l.msg === "string" && l.msg.startsWith("The limit of open files (64)"), 60_000, "stderr");
  assert.match(String(warning.msg), /--max-connections 8192 is lowered to [0-9]+; raise LimitNOFILE= in the unit \(or ulimit -n\) to serve more$/);
  const reg = await register(t, gw.controlPath, { key: "flooded", token: TOKEN });
  const host = (reg.reply.urls as string[])[0];
  // 200 connections at once, each asking for a page: far more than 64 descriptors hold.
  const answers = await Promise.all(Array.from({ length: 200 }, () => rawExchange(gw.port, hello(host), { until: (x) => statusOf(x) !== 0 })));
  const statuses = answers.map((a) => statusOf(a.text));
  t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries([0, 200, 503].map((s) => [s, statuses.filter((x) => x === s).length])))}`);
  assert.ok(statuses.includes(503), `connections beyond the cap are told to come back: ${statuses.join(" ")}`);
  assert.ok(statuses.every((s) => s === 0 || s === 200 || s === 503), `nothing but answers, refusals and (past the refusals in flight) closes: ${statuses.join(" ")}`);
  assert.ok(await waitFor(async () => (await request({ port: gw.port, host, path: "/hello", headers: { Cookie: `authorization=${TOKEN}` } }).catch(() => null))?.status === 200),
    "the route answers once the flood is gone");
  assert.equal(gw.process.child.exitCode, null, "the gateway runs");
});
