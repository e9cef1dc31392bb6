/**
 * The recommended production setup: nginx terminates TLS and passes requests
 * to conductor-server on a UNIX socket (--sock), with contrib/nginx-conductor.conf
 * as the site configuration. Requests, websockets and X-Forwarded-For get
 * through nginx and the gateway to the app. As root, nginx's workers run as
 * www-data, which reaches the gateway's socket through --sock-group and
 * nothing else: not the apps' sockets.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { certDir, selfSigned } from "../helpers/certs.ts";
import { makeRuntimeDir, startGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { nginxMissing, startFrontNginx } from "../helpers/nginx.ts";
import { isRoot } from "../helpers/env.ts";
import { bin } from "../helpers/install.ts";
import { startProcess } from "../helpers/process.ts";
import { register } from "../helpers/register.ts";
import { openWebSocket } from "../helpers/websocket.ts";

test("nginx with contrib/nginx-conductor.conf in front of conductor-server --sock", { skip: nginxMissing }, async (t) => {
  const certs = certDir(t);
  const cert = selfSigned(certs, "site", "apps.localhost", ["*.apps.localhost"]);
  const runtimeDir = makeRuntimeDir(t);
  const sock = join(runtimeDir, "http.sock");
  // As in contrib/conductor.service: the proxy's group is a supplementary group of the gateway's user, never the other way round.
  const proxy = isRoot ? { args: ["--sock-group", "www-data"], groups: ["www-data"] } : { args: [], groups: [] };
  const gw = await startGateway(t, { runtimeDir, args: ["--sock", sock, "-d", "{key}-{user}.apps.localhost", ...proxy.args], groups: proxy.groups });
  const reg = await register(t, gw.controlPath, { key: "web", token: "front-token" });
  const host = (reg.reply.urls as string[])[0];
  assert.equal(reg.reply.scheme, "https", "behind a reverse proxy the gateway says browsers use https");

  const { port } = await startFrontNginx(t, sock, cert, isRoot ? "www-data" : undefined);
  const tls = { rejectUnauthorized: false };

  // nginx terminated TLS, so the cookie the auth link sets must be Secure.
  const link = await request({ port, host, path: "/_conductor/auth/front-token?next=/hello", tls });
  assert.equal(link.status, 302);
  assert.deepEqual(link.headers["set-cookie"], ["authorization=front-token; HttpOnly; Path=/; SameSite=Lax; Secure"]);

  const hello = await request({ port, host, path: "/hello", headers: { Cookie: "authorization=front-token" }, tls });
  assert.equal(hello.status, 200);
  assert.equal(hello.text, "hello\n");
  assert.equal((await request({ port, host, path: "/hello", tls })).status, 403);
  const echo = JSON.parse((await request({ port, host, path: "/echo", headers: { Cookie: "authorization=front-token" }, tls })).text) as { rawHeaders: string[] };
  const field = (name: string): string | undefined => echo.rawHeaders[echo.rawHeaders.findIndex((h) => h.toLowerCase() === name) + 1];
  assert.equal(field("x-forwarded-for"), "127.0.0.1", "the browser's address, as nginx saw it");
  assert.equal(field("x-forwarded-proto"), "https");
  assert.equal(field("x-forwarded-host"), host);

  // nginx keeps its connections to the gateway open (upstream keepalive): ten requests, not ten connections.
  const accepted = async (): Promise<number> =>
    (JSON.parse((await request({ port, host, path: "/_conductor/status", tls })).text) as { connectionTotal: number }).connectionTotal;
  const before = await accepted();
  for (let i = 0; i < 10; i++) assert.equal((await request({ port, host, path: "/hello", headers: { Cookie: "authorization=front-token" }, tls })).status, 200);
  assert.ok(await accepted() - before <= 1, `nginx opened ${await accepted() - before} new connections to the gateway for 11 requests`);

  const ws = await openWebSocket({ port, host, path: "/ws", headers: { Cookie: "authorization=front-token" }, tls });
  ws.send("through nginx and the gateway");
  assert.equal((await ws.receive()).toString(), "through nginx and the gateway");
  ws.close();

  if (isRoot) {
    // The proxy's user, with every group the system gives it, reaches the gateway, not the app behind it.
    const groups = execFileSync("id", ["-G", "www-data"], { encoding: "utf8" }).trim().split(" ");
    const tryConnect = (path: string): Promise<string> => {
      const proc = startProcess(t, process.execPath, ["-e", `require("net").connect(process.argv[1]).on("connect", () => { console.log("connected"); process.exit(0); }).on("error", (e) => { console.log(e.code); process.exit(0); })`, path], { user: "www-data", groups });
      return proc.exited.then(() => proc.stdout.join(""));
    };
    assert.equal(await tryConnect(sock), "connected");
    assert.equal(await tryConnect(join(reg.banner.directory as string, "socket")), "EACCES");
  }
});

test("conductor-server will not give its front-end socket to its own group, or to a group it is not in", { skip: !isRoot }, async (t) => {
  const runtimeDir = makeRuntimeDir(t);
  const sock = join(runtimeDir, "http.sock");
  for (const [group, groups, reason] of [
    ["conductor", ["www-data"], /it is the gateway's own group, whose members can connect to every app socket/],
    ["www-data", [], /EPERM.*the gateway's user must be a member of group www-data \(SupplementaryGroups=www-data/],
  ] as const) {
    const proc = startProcess(t, process.execPath, [bin("conductor-server"), "-r", runtimeDir, "--state-dir", join(runtimeDir, "state"), "-s", sock, "--sock-group", group],
      { user: "conductor", groups: [...groups] });
    assert.equal((await proc.exited).code, 1);
    assert.match(proc.stderr.join("\n"), reason);
    assert.ok(!existsSync(sock), "no socket is left behind");
  }
});
