/**
 * TCP streams against whoever can reach the gateway's ports, and against
 * other local users: one address cannot starve the others, half-closed
 * connections get their whole reply, deny lines hold inside allowed blocks,
 * a port that cannot be bound is named with its reason, and the stream and
 * link directories are the gateway's alone (or it does not start).
 */
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, statSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { account } from "../helpers/accounts.ts";
import { attempt, runAs } from "../helpers/as_user.ts";
import type { Cleanup } from "../helpers/cleanup.ts";
import { needsRoot } from "../helpers/env.ts";
import { makeRuntimeDir } from "../helpers/gateway.ts";
import { bin } from "../helpers/install.ts";
import { nginxMissing, STREAM_MODULE } from "../helpers/nginx.ts";
import { startProcess } from "../helpers/process.ts";
import { register } from "../helpers/register.ts";
import { exchangeFrom, freePortRange, startStreamGateway } from "../helpers/streams.ts";
import { waitFor } from "../helpers/wait.ts";

const skip = needsRoot || nginxMissing || (existsSync(STREAM_MODULE) ? false : "nginx's stream module is not installed (apt-get install libnginx-mod-stream)");

/** What the eof-echo app behind a stream answers to `bytes` sent from `localAddress`, then a half-close. */
async function echoFrom(port: number, bytes: string, localAddress = "127.0.0.1"): Promise<string> {
  return (await exchangeFrom(port, bytes, localAddress)).toString();
}

/** `count` connections from `localAddress` to `port` that send nothing, with counts of those the other side closed. */
async function idleConnections(t: Cleanup, port: number, count: number, localAddress: string): Promise<{ open(): number; closed(): number }> {
  const sockets: Socket[] = [];
  let closed = 0;
  t.after(() => { for (const s of sockets) s.destroy(); });
  for (let i = 0; i < count; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, count - i) }, () => new Promise<void>((resolve, reject) => {
      const socket = connect({ port, host: "127.0.0.1", localAddress });
      sockets.push(socket);
      socket.once("connect", () => resolve());
      socket.once("error", reject);
      socket.on("error", () => {});
      socket.once("close", () => { closed++; });
      socket.resume();
    })));
  }
  return { open: () => count - closed, closed: () => closed };
}

test("one address with 2,000 idle connections to alice's port: nginx closes those past --stream-max-connections-per-address, and another address still reaches alice's and bob's streams", { skip }, async (t) => {
  const range = await freePortRange(2);
  const gw = await startStreamGateway(t, range.text, ["--stream-max-connections-per-address", "256"]);
  const alice = await register(t, gw.controlPath, { key: "db", token: "alice-token-0123", mode: "eof-echo", extra: { kind: "tcp" } });
  const bob = await register(t, gw.controlPath, { key: "db", token: "bob-token-012345", user: "bob", mode: "eof-echo", extra: { kind: "tcp" } });
  const [a, b] = [alice.reply.port as number, bob.reply.port as number];
  assert.notEqual(a, b, JSON.stringify([alice.reply, bob.reply]));

  const flood = await idleConnections(t, a, 2000, "127.0.0.1");
  assert.ok(await waitFor(() => flood.closed() >= 2000 - 256, 120_000), `nginx closes the connections past the cap: ${flood.closed()} closed`);
  assert.equal(flood.open(), 256, "and relays the first 256");
  assert.equal(await echoFrom(a, "from .2", "127.0.0.2"), "after your end, 7 bytes: from .2", "another address reaches alice's stream");
  assert.equal(await echoFrom(b, "from .2", "127.0.0.2"), "after your end, 7 bytes: from .2", "and bob's");
  assert.equal(await echoFrom(b, "from .1", "127.0.0.1"), "after your end, 7 bytes: from .1", "the cap counts per port: the flooding address still reaches bob's");
  assert.equal(await echoFrom(a, "more"), "", "but gets no more of alice's port");
  assert.equal(flood.open(), 256, "the relayed connections were not cut");
});

test("a client that sends, then closes its sending side, gets the whole reply through a stream (proxy_half_close)", { skip }, async (t) => {
  const range = await freePortRange(1);
  const gw = await startStreamGateway(t, range.text);
  const reg = await register(t, gw.controlPath, { key: "eof", token: "eof-token-012345", mode: "eof-echo", extra: { kind: "tcp" } });
  assert.equal(reg.reply.status, "ok", JSON.stringify(reg.reply));
  const sent = "0123456789".repeat(20_000);
  const reply = await echoFrom(reg.reply.port as number, sent);
  assert.equal(reply.length, `after your end, 200000 bytes: `.length + sent.length, "the whole reply");
  assert.equal(reply, `after your end, 200000 bytes: ${sent}`);
});

test("--stream-deny holds inside --stream-allow: 127.0.0.1 gets in, 127.0.0.2 does not", { skip }, async (t) => {
  const range = await freePortRange(1);
  const gw = await startStreamGateway(t, range.text, ["--stream-allow", "127.0.0.0/8", "--stream-deny", "127.0.0.2"]);
  const reg = await register(t, gw.controlPath, { key: "db", token: "allow-token-0123", mode: "eof-echo", extra: { kind: "tcp" } });
  const port = reg.reply.port as number;
  assert.equal(await echoFrom(port, "ping", "127.0.0.1"), "after your end, 4 bytes: ping");
  assert.equal(await echoFrom(port, "ping", "127.0.0.3"), "after your end, 4 bytes: ping", "the whole allowed block gets in");
  assert.equal(await echoFrom(port, "ping", "127.0.0.2"), "", "but not the denied address inside it");
});

test("a stream that finds no port says how many cannot be bound and why (issue 30)", { skip }, async (t) => {
  const range = await freePortRange(2);
  const squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen(range.last, "0.0.0.0", resolve));
  t.after(() => squatter.close());
  const gw = await startStreamGateway(t, range.text);
  const alice = await register(t, gw.controlPath, { key: "db", token: "alice-token-0123", extra: { kind: "tcp" } });
  assert.equal(alice.reply.port, range.first, JSON.stringify(alice.reply));
  const bob = await register(t, gw.controlPath, { key: "db", token: "bob-token-012345", user: "bob", extra: { kind: "tcp" } });
  assert.equal(bob.reply.status, "error");
  assert.equal(bob.reply.reason, `Cannot publish a TCP service: all 2 ports of this gateway (${range.text}) are taken, 1 of them because they cannot be bound `
    + `(port ${range.last} is in use by another program); try again later, or ask its admin for a larger --port-range`);
});

/** Starts conductor-server on `runtimeDir` with streams on `range` and `args`, expecting it to refuse; resolves with its error line. */
async function refusedStart(t: Cleanup, runtimeDir: string, range: string, args: string[] = []): Promise<string> {
  const proc = startProcess(t, process.execPath, [bin("conductor-server"), "-r", runtimeDir, "--state-dir", join(runtimeDir, "state"), "-p", "0", "-b", "127.0.0.1",
    "--port-range", range, ...args], { user: "conductor" });
  const started = await proc.waitForJson((l) => l.msg === "gateway listening", 60_000, "stderr").then(() => true, () => false);
  if (started) {
    await proc.stop();
    await startProcess(t, process.execPath, [bin("conductor-server"), "-r", runtimeDir, "--stop-streams"], { user: "conductor" }).exited;
  }
  assert.equal((await proc.exited).code, 1, `the start is refused: ${proc.stderr.join("\n")}`);
  const error = proc.json("stderr").find((l) => l.level === "error");
  assert.ok(error !== undefined, proc.stderr.join("\n"));
  return error.msg as string;
}

test("a stream or links directory that others may write to stops the start with what to fix; nobody but the gateway makes a link", { skip }, async (t) => {
  const range = await freePortRange(1);
  const conductor = account("conductor");
  const dir = makeRuntimeDir(t);
  const blocks = join(dir, "blocks");
  mkdirSync(blocks);
  chownSync(blocks, conductor.uid, conductor.gid);
  chmodSync(blocks, 0o777);
  assert.equal(await refusedStart(t, dir, range.text, ["--stream-dir", blocks]),
    `Cannot use ${blocks} as the stream directory (--stream-dir): other users may write to it (mode 0777), so they could plant files there; chmod go-w ${blocks}`);
  chownSync(blocks, account("alice").uid, conductor.gid);
  chmodSync(blocks, 0o755);
  assert.equal(await refusedStart(t, dir, range.text, ["--stream-dir", blocks]),
    `Cannot use ${blocks} as the stream directory (--stream-dir): it must be a directory owned by the gateway's user (uid ${conductor.uid}), but it is owned by uid ${account("alice").uid}; chown it or remove it`);
  chownSync(blocks, conductor.uid, conductor.gid);

  const links = join(dir, "streams");
  mkdirSync(links);
  chownSync(links, conductor.uid, conductor.gid);
  chmodSync(links, 0o733);
  assert.equal(await refusedStart(t, dir, range.text, ["--stream-dir", blocks]),
    `Cannot use ${links} as the stream links' directory: other users may write to it (mode 0733), so they could plant files there; chmod go-w ${links}`);

  chmodSync(links, 0o755);
  const gw = await startStreamGateway(t, range.text, ["--stream-dir", blocks], { runtimeDir: dir });
  assert.equal(statSync(links).mode & 0o7777, 0o711, "the gateway closes its links' directory to listing and writing");
  const reg = await register(t, gw.controlPath, { key: "db", token: "alice-token-0123", mode: "eof-echo", extra: { kind: "tcp" } });
  const link = join(links, `${reg.reply.port}.sock`);
  for (const user of ["alice", "bob"] as const) {
    assert.equal(await runAs(t, user, attempt("fs.symlinkSync('/tmp/x', a)"), join(links, `${range.first}.new`)), "EACCES", `${user} cannot make a link`);
    assert.equal(await runAs(t, user, attempt("fs.symlinkSync('/tmp/x', a + '.tmp'); fs.renameSync(a + '.tmp', a)"), link), "EACCES", `${user} cannot swap a link`);
    assert.equal(await runAs(t, user, attempt("fs.unlinkSync(a)"), link), "EACCES", `${user} cannot remove a link`);
    assert.equal(await runAs(t, user, attempt("fs.readdirSync(a)"), links), "EACCES", `${user} cannot list the links`);
    assert.equal(await runAs(t, user, attempt("fs.writeFileSync(a + '/_conductor_1.conf', 'x')"), blocks), "EACCES", `${user} cannot add a block`);
  }
  assert.equal(await echoFrom(reg.reply.port as number, "ping"), "after your end, 4 bytes: ping");
});
