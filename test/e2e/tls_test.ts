/**
 * TLS on the front end: the client-certificate allow-list decides at the
 * handshake, and SIGHUP reloads the certificate without dropping connections.
 */
import assert from "node:assert/strict";
import { copyFileSync, readFileSync } from "node:fs";
import { Agent, request as httpsRequest } from "node:https";
import { join } from "node:path";
import { test } from "node:test";
import type { TLSSocket } from "node:tls";
import { certDir, selfSigned } from "../helpers/certs.ts";
import { startGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { register } from "../helpers/register.ts";
import { defer } from "../helpers/cleanup.ts";

test("TLS: an allowed client certificate gets through, another one fails at the handshake, SIGHUP reloads", async (t) => {
  const dir = certDir(t);
  const server = selfSigned(dir, "server", "localhost", ["localhost", "*.localhost"]);
  const allowed = selfSigned(dir, "allowed", "alice's laptop");
  const stranger = selfSigned(dir, "stranger", "someone else");
  const live = { cert: join(dir, "live.pem"), key: join(dir, "live.key") };
  copyFileSync(server.cert, live.cert);
  copyFileSync(server.key, live.key);

  const gw = await startGateway(t, { args: ["--ssl-cert-file", live.cert, "--ssl-key-file", live.key, "--ssl-allowed-clients", allowed.cert] });
  const reg = await register(t, gw.controlPath, { key: "secure", token: "tls-token" });
  const host = (reg.reply.urls as string[])[0];
  const clientTls = (c: { cert: string; key: string } | null) => ({
    rejectUnauthorized: false,
    ...(c ? { cert: readFileSync(c.cert), key: readFileSync(c.key) } : {}),
  });

  const ok = await request({ port: gw.port, host, path: "/hello", headers: { Cookie: "authorization=tls-token" }, tls: clientTls(allowed) });
  assert.equal(ok.status, 200);
  const echo = JSON.parse((await request({ port: gw.port, host, path: "/echo", headers: { Cookie: "authorization=tls-token" }, tls: clientTls(allowed) })).text);
  const proto = echo.rawHeaders[echo.rawHeaders.findIndex((h: string) => h.toLowerCase() === "x-forwarded-proto") + 1];
  assert.equal(proto, "https");

  const auth = await request({ port: gw.port, host, path: "/_conductor/auth/tls-token", tls: clientTls(allowed) });
  assert.deepEqual(auth.headers["set-cookie"], ["authorization=tls-token; HttpOnly; Path=/; SameSite=Lax; Secure"]);

  await assert.rejects(request({ port: gw.port, host, path: "/hello", tls: clientTls(stranger) }), "another certificate fails");
  await assert.rejects(request({ port: gw.port, host, path: "/hello", tls: clientTls(null) }), "no certificate fails");

  // A keep-alive connection opened before the reload keeps working on the old certificate.
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ...clientTls(allowed) });
  defer(t, () => agent.destroy());
  const first = await fetchThrough(gw.port, host, agent);
  assert.deepEqual(first, { status: 200, fingerprint: server.fingerprint, reused: false });

  const renewed = selfSigned(dir, "renewed", "localhost", ["localhost", "*.localhost"]);
  copyFileSync(renewed.cert, live.cert);
  copyFileSync(renewed.key, live.key);
  gw.process.child.kill("SIGHUP");
  await gw.process.waitForJson((l) => l.msg === "TLS files reloaded", 60_000, "stderr");

  assert.deepEqual(await fetchThrough(gw.port, host, agent), { status: 200, fingerprint: server.fingerprint, reused: true },
    "the connection opened before the reload still serves, with its certificate");
  const fresh = new Agent({ keepAlive: false, ...clientTls(allowed) });
  assert.deepEqual(await fetchThrough(gw.port, host, fresh), { status: 200, fingerprint: renewed.fingerprint, reused: false },
    "a new connection gets the new certificate");
});

/** One request through `agent`: its status, the server certificate's fingerprint, and whether the connection was reused. */
function fetchThrough(port: number, host: string, agent: Agent): Promise<{ status: number; fingerprint: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: "127.0.0.1", port, path: "/hello", headers: { Host: host, Cookie: "authorization=tls-token" }, agent, servername: "localhost" }, (res) => {
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, fingerprint, reused: req.reusedSocket }));
    });
    req.on("error", reject);
    req.end();
  });
}
