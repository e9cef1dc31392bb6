/**
 * The streams' admin API on --admin-listen against whoever can reach it
 * without the token (a 401 closes at once, the body unread; a flood of
 * half-sent requests neither exhausts the gateway nor floods its log), and
 * its answers to names, ports and backends that are taken or bad.
 */
import assert from "node:assert/strict";
import { chownSync, existsSync, writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { account } from "../helpers/accounts.ts";
import type { Cleanup } from "../helpers/cleanup.ts";
import { needsRoot } from "../helpers/env.ts";
import { makeRuntimeDir, type TestGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { nginxMissing, STREAM_MODULE } from "../helpers/nginx.ts";
import { register } from "../helpers/register.ts";
import { freePortRange, startStreamGateway, tcpExchange } from "../helpers/streams.ts";
import { waitFor } from "../helpers/wait.ts";

const skip = needsRoot || nginxMissing || (existsSync(STREAM_MODULE) ? false : "nginx's stream module is not installed (apt-get install libnginx-mod-stream)");

const TOKEN = "admin-token-0123456789abcdef";

/** A gateway with streams on `range` and the admin API on 127.0.0.1 with {@link TOKEN}; `wrapper` as startGateway's. */
async function adminGateway(t: Cleanup, range: string, wrapper?: string[]): Promise<{ gw: TestGateway; adminPort: number }> {
  const dir = makeRuntimeDir(t);
  const tokenFile = join(dir, "admin.token");
  writeFileSync(tokenFile, TOKEN + "\n", { mode: 0o600 });
  chownSync(tokenFile, account("conductor").uid, account("conductor").gid);
  const gw = await startStreamGateway(t, range, ["--admin-listen", "127.0.0.1:0", "--admin-token-file", tokenFile], { runtimeDir: dir, wrapper });
  const listening = await gw.process.waitForJson((l) => l.msg === "stream admin API listening" && typeof l.port === "number", 60_000, "stderr");
  return { gw, adminPort: listening.port as number };
}

/** An admin request with the token: its status and parsed body. */
async function admin(port: number, path: string): Promise<{ status: number; body: { result?: string; errors?: string } & Record<string, unknown> }> {
  const r = await request({ port, host: "admin", path, headers: { Authorization: `Bearer ${TOKEN}` } });
  return { status: r.status, body: JSON.parse(r.text) };
}

test("a request without the token whose body dribbles in at a byte a second is closed right after its 401, the body unread", { skip }, async (t) => {
  const { adminPort } = await adminGateway(t, (await freePortRange(1)).text);
  const socket = connect({ port: adminPort, host: "127.0.0.1" });
  t.after(() => socket.destroy());
  let answer = "";
  let dribbled = 0;
  socket.setEncoding("utf8");
  socket.on("data", (c: string) => { answer += c; });
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.write("POST /createstream/1/x:1 HTTP/1.1\r\nHost: admin\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n");
  // The gateway's limit for a whole request is 30 s: a close before 20 bytes came right after the 401.
  const dribble = setInterval(() => { if (!socket.destroyed && dribbled < 20) { dribbled++; socket.write("x"); } }, 1000);
  t.after(() => clearInterval(dribble));
  assert.ok(await waitFor(() => socket.destroyed || dribbled >= 20, 60_000));
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  assert.ok(socket.destroyed, `the connection was closed: ${dribbled} bytes of the body sent`);
  assert.ok(dribbled < 20, `closed right after the 401, not at the request's time limit: ${dribbled} bytes of the body sent`);
  assert.match(answer, /^HTTP\/1\.1 401 /);
  assert.match(answer, /"errors":"Cannot serve the request: it needs 'Authorization: Bearer TOKEN'/);
});

/** `count` connections to `port` that each send half a request head; resolves with a count of those the gateway closed, and the open ones. */
async function halfSentRequests(t: Cleanup, port: number, count: number): Promise<{ closed(): number }> {
  const sockets: Socket[] = [];
  let closed = 0;
  t.after(() => { for (const s of sockets) s.destroy(); });
  for (let i = 0; i < count; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, count - i) }, () => new Promise<void>((resolve) => {
      const socket = connect({ port, host: "127.0.0.1" });
      sockets.push(socket);
      socket.on("error", () => {});
      socket.once("close", () => { closed++; resolve(); });
      socket.once("connect", () => { socket.write("GET /status HTTP/1.1\r\nHost: admin\r\n"); resolve(); });
      socket.resume();
    })));
  }
  return { closed: () => closed };
}

test("3,000 half-sent requests to --admin-listen cannot exhaust the gateway: its web front and control socket answer, and the refusals are logged with a count, in few lines", { skip }, async (t) => {
  // 1,024 descriptors: without its own cap, the admin API would take every one of them.
  const { gw, adminPort } = await adminGateway(t, (await freePortRange(1)).text, ["prlimit", "--nofile=1024:1024", "--"]);
  const flood = await halfSentRequests(t, adminPort, 3000);
  assert.ok(await waitFor(() => flood.closed() >= 3000 - 32, 120_000), `the gateway closes what is over the admin API's cap at once: ${flood.closed()} closed`);

  const status = await request({ port: gw.port, host: "x.localhost", path: "/_conductor/status" });
  assert.equal(status.status, 200, "the web front answers");
  const reg = await register(t, gw.controlPath, { key: "lab", token: "alice-token-0123" });
  assert.equal(reg.reply.status, "ok", `the control socket answers: ${JSON.stringify(reg.reply)}`);

  const reports = (): Array<Record<string, unknown>> => gw.process.json("stderr").filter((l) => /^stream admin API: refused \d+ connections? since the last report$/.test(l.msg as string));
  const refused = (): number => reports().reduce((n, l) => n + ((l.overConnectionCap as number | undefined) ?? 0), 0);
  assert.ok(await waitFor(() => refused() >= 3000 - 32, 60_000), `every refusal is counted: ${refused()} in ${JSON.stringify(reports())}`);
  assert.ok(reports().length <= 5, `in few lines: ${reports().length}`);
  assert.equal(reports()[0].last, "127.0.0.1");
});

test("createstream: a name another admin stream holds gets 409 and moves nothing; a bad backend gets 400 even on a taken port; unix:<sockets dir>/ and numeric IPv4 forms get 400", { skip }, async (t) => {
  const range = await freePortRange(3);
  const { gw, adminPort } = await adminGateway(t, range.text);
  const echo = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  t.after(() => echo.close());
  const backend = `127.0.0.1:${(echo.address() as { port: number }).port}`;

  assert.deepEqual((await admin(adminPort, `/createstream/${range.first}/${backend}?name=one`)).body, { result: "ok", errors: "" });
  const again = await admin(adminPort, `/createstream/${range.first + 1}/${backend}?name=one`);
  assert.equal(again.status, 409, JSON.stringify(again.body));
  assert.equal(again.body.errors, `Cannot create stream one: the admin's stream of that name listens on port ${range.first}; remove it first or choose another name`);
  const streams = async (): Promise<unknown[]> => ((await admin(adminPort, "/getstreams")).body as unknown as Array<Record<string, unknown>>).map((s) => [s.listen, s.proxy_pass, s.name]);
  assert.deepEqual(await streams(), [[range.first, backend, "one"]], "nothing moved");
  assert.equal((await tcpExchange(range.first, "ping", { until: (got) => got.length >= 4 })).toString(), "ping", "and the stream still relays");

  const sockets = join(gw.runtimeDir, "sockets");
  const bad: Array<[string, RegExp]> = [
    [`/createstream/${range.first}/x;y:80`, /^Cannot use backend "x;y:80": a backend is HOST:PORT/],
    [`/createstream/${range.first + 1}/unix:${sockets}/`, /^Cannot use backend "unix:.*\/sockets\/": a unix: backend is a socket path inside/],
    [`/createstream/${range.first + 1}/unix:${sockets}`, /^Cannot use backend "unix:.*\/sockets": a unix: backend is a socket path inside/],
    [`/createstream/${range.first + 1}/2130706433:22`, /^Cannot use backend "2130706433:22": a backend is HOST:PORT \(HOST a DNS name whose last label starts with a letter/],
    [`/createstream/${range.first + 1}/0x7f000001:22`, /^Cannot use backend "0x7f000001:22"/],
    [`/createstream/${range.first + 1}/127.1:22`, /^Cannot use backend "127.1:22"/],
  ];
  for (const [path, reason] of bad) {
    const r = await admin(adminPort, path);
    assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
    assert.match(r.body.errors!, reason, path);
  }
  const taken = await admin(adminPort, `/createstream/${range.first}/${backend}?name=two`);
  assert.equal(taken.status, 409, "a good backend on a taken port is a conflict");
  assert.match(taken.body.errors!, new RegExp(`^Cannot create a stream on port ${range.first}: admin's stream one listens there; remove it first`));
  assert.deepEqual(await streams(), [[range.first, backend, "one"]], "nothing was added");
});
