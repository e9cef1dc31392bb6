/**
 * The control socket as the original client speaks it, and every refusal of
 * a socket that is not the registering user's own, with the gateway running
 * as user `conductor` and clients as `alice` and `bob`.
 */
import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { VERSION } from "../../src/lib/version.ts";
import { account, currentAccount } from "../helpers/accounts.ts";
import { isRoot, needsRoot } from "../helpers/env.ts";
import { startGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { register } from "../helpers/register.ts";
import { fixture } from "../helpers/install.ts";
import { startProcess } from "../helpers/process.ts";
import { defer } from "../helpers/cleanup.ts";
import { waitFor } from "../helpers/wait.ts";

/** The user a route of `name`'s client belongs to: `name` as root, else whoever runs the suite. */
const user = (name: "alice" | "bob"): string => (isRoot ? name : currentAccount().name);

test("control protocol: banner, config, reply and EOF, byte for byte as the original client", async (t) => {
  const gw = await startGateway(t);
  const socketsDir = join(gw.runtimeDir, "sockets");
  assert.equal(statSync(socketsDir).mode & 0o7777, 0o771, "sockets directory is 0771");
  assert.equal(statSync(gw.controlPath).mode & 0o777, 0o777, "control socket is 0777");

  const reg = await register(t, gw.controlPath, { key: "Web", token: "secret-token" });
  const dir = reg.banner.directory as string;
  // The original's banner, with the version and domains an old client ignores.
  assert.equal(reg.banner.raw, `{"status": "ok", "directory": "${dir}", "version": "${VERSION}", "domains": ["{key}-{user}.localhost:${gw.port}"]}`);
  assert.equal(join(dir, ".."), socketsDir);
  assert.match(dir, /\/[0-9a-f]{32}$/, "directory name is not guessable");
  const owner = user("alice");
  const host = gw.host("web", owner);
  // The original's reply, with the scheme extension an old client ignores.
  assert.equal(reg.reply.raw, `{"status": "ok", "urls": ["${host}"], "scheme": "http", "activity": true}`);
  assert.equal(statSync(dir).mode & 0o7777, 0o770, "directory is locked after registration");

  const ok = await request({ port: gw.port, host, path: "/hello", headers: { Cookie: "authorization=secret-token" } });
  assert.equal(ok.status, 200);
  assert.equal(ok.text, "hello\n");

  await reg.end();
  // Without a goodbye the client may be reconnecting: the host answers 503 (try again), not 404.
  const gone = await waitFor(async () => (await request({ port: gw.port, host, path: "/hello", headers: { Cookie: "authorization=secret-token" } })).status === 503);
  assert.ok(gone, "route is removed when the control connection ends");
  assert.ok(await waitFor(async () => !existsSync(dir)), "client directory is removed at EOF");
  assert.equal((await request({ port: gw.port, host: gw.host("other", owner), path: "/" })).status, 404, "a host that never had a route is 404");

  // The same key registered again answers at once; a goodbye before EOF makes the host 404 (gone for good).
  const back = await register(t, gw.controlPath, { key: "Web", token: "secret-token" });
  assert.equal(back.reply.status, "ok");
  assert.equal((await request({ port: gw.port, host, path: "/hello", headers: { Cookie: "authorization=secret-token" } })).status, 200);
  back.process.child.stdin?.write("goodbye\n");
  await back.process.waitForJson((l) => l.event === "closed");
  assert.ok(await waitFor(async () => (await request({ port: gw.port, host, path: "/hello" })).status === 404),
    "after a goodbye the host is gone at once (404)");
});

test("control protocol: a second registration of a key with another token is refused, the same token replaces", async (t) => {
  const gw = await startGateway(t);
  const first = await register(t, gw.controlPath, { key: "lab", token: "token-one" });
  assert.equal(first.reply.status, "ok");

  const second = await register(t, gw.controlPath, { key: "lab", token: "token-two" });
  assert.equal(second.reply.status, "error");
  assert.match(String(second.reply.reason), /already has a live route with key 'lab'/);
  assert.equal(second.reply.code, "CONDUCTOR_ERR_KEY_TAKEN", "a stable code tells a client what the reason says (an extension)");
  await second.process.exited;
  assert.ok(await waitFor(async () => !existsSync(second.banner.directory as string)), "refused client's directory is removed");

  const host = gw.host("lab", user("alice"));
  assert.equal((await request({ port: gw.port, host, path: "/hello", headers: { Cookie: "authorization=token-one" } })).status, 200,
    "the first route still answers");

  // The same token is the same run coming back after a drop: it takes over, the old connection is closed.
  const again = await register(t, gw.controlPath, { key: "lab", token: "token-one" });
  assert.equal(again.reply.status, "ok");
  await first.process.waitForJson((l) => l.event === "closed");
  assert.equal((await request({ port: gw.port, host, path: "/hello", headers: { Cookie: "authorization=token-one" } })).status, 200);
});

test("a route replaced by the same run lets the request in progress on it finish (regression: it got a 502)", async (t) => {
  const gw = await startGateway(t);
  const first = await register(t, gw.controlPath, { key: "lab", token: "token-one" });
  // The first run's app outlives its control connection, as after a dropped SSH connection.
  first.process.child.stdin?.write("linger\n");
  await first.process.waitForJson((l) => l.event === "lingering");
  const host = gw.host("lab", user("alice"));
  const cookie = { Cookie: "authorization=token-one" };
  const held = request({ port: gw.port, host, path: "/hold", headers: cookie });
  assert.ok(await waitFor(async () => (await request({ port: gw.port, host, path: "/holding", headers: cookie })).text === "1"), "the first app holds the request");

  const again = await register(t, gw.controlPath, { key: "lab", token: "token-one" });
  assert.equal(again.reply.status, "ok");
  await first.process.waitForJson((l) => l.event === "closed");
  assert.equal((await request({ port: gw.port, host, path: "/holding", headers: cookie })).text, "0", "new requests go to the new registration");
  first.process.child.stdin?.write("release\n");
  const answer = await held;
  assert.equal(answer.status, 200);
  assert.equal(answer.text, "released\n");
});

test("control protocol: a config without a key gets the route name 'none', as the original server does", async (t) => {
  const gw = await startGateway(t);
  const reg = await register(t, gw.controlPath, { key: "", token: "tok" });
  assert.equal(reg.reply.status, "ok");
  assert.deepEqual(reg.reply.urls, [gw.host("none", user("alice"))]);
});

test("control protocol: invalid keys and garbage configs are refused with a reason", async (t) => {
  const gw = await startGateway(t);
  const reg = await register(t, gw.controlPath, { key: "no/slashes", token: "tok" });
  assert.equal(reg.reply.status, "error");
  assert.match(String(reg.reply.reason), /Cannot use key "no\/slashes": use 1 to 63 letters, digits and '-'/);
});

for (const [mode, reason] of [
  ["world", /accessible to all users \(mode 0666\); chmod 660/],
  ["private", /cannot connect to .*EACCES.*chmod 660/],
  ["fifo", /is a FIFO, not a socket/],
  ["file", /is a regular file, not a socket/],
  ["none", /no socket at .*forward the app socket there/],
] as const) {
  test(`control protocol: a ${mode} socket path is refused`, { skip: mode === "private" && !isRoot ? "root can connect to a 0600 socket only when the gateway is another user" : false }, async (t) => {
    const gw = await startGateway(t);
    const reg = await register(t, gw.controlPath, { key: "app", token: "tok", mode });
    assert.equal(reg.reply.status, "error", JSON.stringify(reg.reply));
    assert.match(String(reg.reply.reason), reason);
    await reg.process.exited;
    assert.ok(await waitFor(async () => !existsSync(reg.banner.directory as string)), "directory removed after a refusal");
    const status = (await request({ port: gw.port, host: gw.host("app", user("alice")), path: "/" })).status;
    assert.equal(status, 404, "no route was added");
  });
}

test("control protocol: a directory holding more than the socket is refused and left locked (regression)", { skip: needsRoot }, async (t) => {
  const gw = await startGateway(t);
  const reg = await register(t, gw.controlPath, { key: "clutter", token: "tok", mode: "clutter" });
  assert.equal(reg.reply.status, "error");
  assert.match(String(reg.reply.reason), /holds "stash" of yours besides the socket/);
  await reg.process.exited;
  const dir = reg.banner.directory as string;
  // alice's private directory cannot be removed by the gateway; it must at least be closed to everyone.
  assert.ok(await waitFor(async () => !existsSync(dir) || (statSync(dir).mode & 0o7777) === 0o700), "the directory is locked");
  await gw.stop();
  const again = await startGateway(t, { runtimeDir: gw.runtimeDir });
  await again.process.waitForJson((l) => l.msg === "cannot remove a stale client directory; it is locked, remove it as root", 60_000, "stderr");
  const ok = await register(t, again.controlPath, { key: "fine", token: "tok" });
  assert.equal(ok.reply.status, "ok", "the gateway restarts and serves despite the leftover");
});

test("control protocol: bob cannot claim a route in alice's name", { skip: needsRoot }, async (t) => {
  const gw = await startGateway(t);
  // Alice's app socket, somewhere bob can see it.
  const alice = await register(t, gw.controlPath, { key: "real", token: "alice-token" });
  const aliceSocket = join(alice.banner.directory as string, "socket");

  const viaSymlink = await register(t, gw.controlPath, { key: "stolen", token: "bob-token", user: "bob", mode: "symlink", arg: aliceSocket });
  assert.equal(viaSymlink.reply.status, "error");
  assert.match(String(viaSymlink.reply.reason), /is a symbolic link, not a socket/);

  // The kernel (fs.protected_hardlinks) stops bob from linking alice's socket; the gateway then finds nothing.
  const viaLink = await register(t, gw.controlPath, { key: "stolen", token: "bob-token", user: "bob", mode: "hardlink", arg: aliceSocket });
  assert.equal(viaLink.reply.status, "error");

  // Root can make the link; the gateway still refuses a socket with two names.
  const standalone = join(gw.runtimeDir, "alice-app.sock");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(standalone, resolve));
  defer(t, () => server.close());
  const rootLink = await register(t, gw.controlPath, { key: "stolen", token: "x", user: null, mode: "hardlink", arg: standalone });
  assert.equal(rootLink.reply.status, "error");
  assert.match(String(rootLink.reply.reason), /has 2 hard links/);

  // Bob's own socket registers under bob, whatever he asks for.
  const bob = await register(t, gw.controlPath, { key: "real", token: "bob-token", user: "bob" });
  assert.equal(bob.reply.status, "ok");
  assert.deepEqual(bob.reply.urls, [gw.host("real", "bob")]);
  assert.equal((await request({ port: gw.port, host: gw.host("real", "alice"), path: "/hello", headers: { Cookie: "authorization=bob-token" } })).status, 403,
    "bob's token does not open alice's route");
});

test("control protocol: a user cannot enter another user's client directory", { skip: needsRoot }, async (t) => {
  const gw = await startGateway(t);
  const alice = await register(t, gw.controlPath, { key: "private", token: "alice-token" });
  const dir = alice.banner.directory as string;
  const st = statSync(dir);
  assert.equal(st.uid, account("conductor").uid);
  assert.equal(st.mode & 0o007, 0, "others have no access to a locked client directory");
  const socket = statSync(join(dir, "socket"));
  assert.equal(socket.uid, account("alice").uid);
  assert.equal(socket.gid, account("conductor").gid, "setgid directory gives the socket the gateway's group");
});

test("one user flooding the control socket does not keep another from registering: the flooder's oldest waiting connection gives way", { skip: needsRoot }, async (t) => {
  const gw = await startGateway(t, { args: ["--max-pending", "8"] });
  const flood = startProcess(t, process.execPath, [fixture("flood"), gw.controlPath, "8"], { user: "bob", stdin: true });
  await flood.waitForJson((l) => l.placed === 7);
  const alice = await register(t, gw.controlPath, { key: "lab", token: "alice-token-0123" });
  assert.equal(alice.reply.status, "ok", JSON.stringify(alice.reply));
  const gaveWay = await flood.waitForJson((l) => typeof l.closed === "number");
  assert.equal(gaveWay.closed, 0, "the flooder's oldest connection made room");
  assert.match(gaveWay.line as string, /the gateway's control socket is full/);
  await alice.end();
  flood.child.stdin?.end();
});
