/**
 * The recommended production setup: nginx terminates TLS and passes requests
 * to conductor-server on a UNIX socket (--sock), with contrib/nginx-conductor.conf
 * as the site configuration. Requests, websockets and X-Forwarded-For get
 * through nginx and the gateway to the app.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { certDir, selfSigned } from "../helpers/certs.ts";
import { makeRuntimeDir, startGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { nginxMissing, startFrontNginx } from "../helpers/nginx.ts";
import { register } from "../helpers/register.ts";
import { openWebSocket } from "../helpers/websocket.ts";

test("nginx with contrib/nginx-conductor.conf in front of conductor-server --sock", { skip: nginxMissing }, async (t) => {
  const certs = certDir(t);
  const cert = selfSigned(certs, "site", "apps.localhost", ["*.apps.localhost"]);
  const runtimeDir = makeRuntimeDir(t);
  const sock = join(runtimeDir, "http.sock");
  const gw = await startGateway(t, { runtimeDir, args: ["--sock", sock, "-d", "{key}-{user}.apps.localhost"] });
  const reg = await register(t, gw.controlPath, { key: "web", token: "front-token" });
  const host = (reg.reply.urls as string[])[0];
  assert.equal(reg.reply.scheme, "https", "behind a reverse proxy the gateway says browsers use https");

  const { port } = await startFrontNginx(t, sock, cert);
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
});
