/**
 * The apps researchers run, from Debian's packages, published by conductor
 * through a private sshd and conductor-server: Jupyter Server with a kernel
 * over its websocket, websockify bridging a TCP service, gunicorn streaming
 * a large download. Each runs as alice with the command line the recipes in
 * conductor(7) give.
 */
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { chownSync, readFileSync, writeFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { account } from "../helpers/accounts.ts";
import { missing, program } from "../helpers/apps.ts";
import { startConductor, userDir } from "../helpers/conductor.ts";
import { isRoot } from "../helpers/env.ts";
import { startGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { contrib } from "../helpers/install.ts";
import { sshdMissing, startSshd } from "../helpers/sshd.ts";
import { openWebSocket, type WsClient } from "../helpers/websocket.ts";
import { defer } from "../helpers/cleanup.ts";

const TOKEN = "gateway-cookie-token";
const COOKIE = `authorization=${TOKEN}`;

/** Makes `path` alice's (the app writes there as alice). */
function give(path: string): void {
  if (isRoot) chownSync(path, account("alice").uid, account("alice").gid);
}

test("Jupyter Server: a kernel started over REST runs code over its websocket, through the gateway; no cookie, no entry", { skip: sshdMissing || missing("jupyter-server"), timeout: 120_000 }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const dir = userDir(t, "alice");
  const sock = join(dir, "jupyter.sock");
  // The recipe of conductor(7): Jupyter listens on the socket, accepts a public Host, and takes
  // the gateway's token as its own (JUPYTER_TOKEN, from the environment).
  const client = startConductor(t, sshd, gw, {
    key: "lab", token: TOKEN, appSocket: sock, env: { JUPYTER_TOKEN: TOKEN },
    command: [program("jupyter-server"), "--no-browser", "--sock", sock, "--ServerApp.allow_remote_access=True"],
  });
  const live = await client.live(1, 60_000);
  const host = live.urls[0];
  const api = { Cookie: COOKIE, Authorization: `token ${TOKEN}`, "Content-Type": "application/json" };

  const started = await request({ port: gw.port, host, path: "/api/kernels", method: "POST", headers: api, body: JSON.stringify({ name: "python3" }) });
  assert.equal(started.status, 201, started.text);
  const kernel = JSON.parse(started.text) as { id: string };
  const session = randomUUID();
  const ws = await openWebSocket({ port: gw.port, host, path: `/api/kernels/${kernel.id}/channels?session_id=${session}&token=${TOKEN}`, headers: { Cookie: COOKIE } });
  const msgId = randomUUID();
  ws.send(JSON.stringify({
    header: { msg_id: msgId, username: "test", session, msg_type: "execute_request", version: "5.3", date: new Date().toISOString() },
    parent_header: {}, metadata: {}, channel: "shell", buffers: [],
    content: { code: "print(6 * 7)", silent: false, store_history: false, user_expressions: {}, allow_stdin: false, stop_on_error: true },
  }));
  let output = "";
  const deadline = Date.now() + 60_000;
  while (!output.includes("42") && Date.now() < deadline) {
    const msg = JSON.parse((await ws.receive()).toString());
    if (msg.parent_header?.msg_id === msgId && msg.msg_type === "stream") output += msg.content.text;
  }
  assert.equal(output, "42\n");
  ws.close();

  const noCookie = await request({ port: gw.port, host, path: "/api/kernels", method: "POST", headers: { Authorization: `token ${TOKEN}`, "Content-Type": "application/json" }, body: "{}" });
  assert.equal(noCookie.status, 403);
  await assert.rejects(openWebSocket({ port: gw.port, host, path: `/api/kernels/${kernel.id}/channels?session_id=${session}&token=${TOKEN}` }), /403 Forbidden/);
});

test("websockify carries a TCP service over a websocket through the gateway, 1 MiB each way intact", { skip: sshdMissing || missing("websockify", "python3"), timeout: 60_000 }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const echo = createServer((s) => s.pipe(s));
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  defer(t, () => echo.close());
  const port = (echo.address() as { port: number }).port;
  const dir = userDir(t, "alice");
  const sock = join(dir, "vnc.sock");
  const client = startConductor(t, sshd, gw, {
    key: "desktop", token: TOKEN, appSocket: sock,
    command: [program("python3"), contrib("websockify-unix"), sock, `127.0.0.1:${port}`],
  });
  const live = await client.live(1, 30_000);
  const ws = await openWebSocket({ port: gw.port, host: live.urls[0], path: "/", headers: { Cookie: COOKIE, "Sec-WebSocket-Protocol": "binary" } });
  const payload = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >> 10)) & 0xff;
  ws.send(payload);
  const back = await receiveBytes(ws, payload.length);
  assert.ok(back.equals(payload), "1 MiB came back intact");
  ws.close();
  await assert.rejects(openWebSocket({ port: gw.port, host: live.urls[0], path: "/" }), /403 Forbidden/);
});

test("gunicorn streams 50 MiB through the gateway intact, with the gateway's memory bounded", { skip: sshdMissing || missing("gunicorn"), timeout: 120_000 }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const dir = userDir(t, "alice");
  const size = 50 * 1024 * 1024;
  writeFileSync(join(dir, "bigfile.py"), [
    "def app(environ, start_response):",
    `    size = ${size}`,
    "    chunk = bytes(range(256)) * 256",
    "    start_response('200 OK', [('Content-Type', 'application/octet-stream'), ('Content-Length', str(size))])",
    "    return (chunk for _ in range(size // len(chunk)))",
    "",
  ].join("\n"));
  give(join(dir, "bigfile.py"));
  const sock = join(dir, "gunicorn.sock");
  const client = startConductor(t, sshd, gw, {
    key: "dash", token: TOKEN, appSocket: sock,
    command: [program("gunicorn"), "--bind", `unix:${sock}`, "--umask", "0o077", "--chdir", dir, "bigfile:app"],
  });
  const live = await client.live(1, 30_000);
  const rss = (): number => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${gw.process.pid}/status`, "utf8"))![1]);
  const before = rss();
  let stalled = 0;
  const hash = createHash("sha256");
  const length = await new Promise<number>((resolve, reject) => {
    httpGet({ host: "127.0.0.1", port: gw.port, path: "/", headers: { Host: live.urls[0], Cookie: COOKIE } }, (res) => {
      let n = 0;
      let paused = false;
      res.on("data", (c: Buffer) => {
        hash.update(c);
        n += c.length;
        if (!paused && n > 2 * 1024 * 1024) {
          // The browser stops reading for two seconds: a gateway that buffered would read the rest from the app meanwhile.
          paused = true;
          res.pause();
          setTimeout(() => {
            stalled = rss();
            res.resume();
          }, 2000);
        }
      });
      res.on("end", () => resolve(n));
      res.on("error", reject);
    }).on("error", reject);
  });
  assert.equal(length, size);
  const expected = createHash("sha256");
  const chunk = Buffer.from(Array.from({ length: 256 * 256 }, (_, i) => i & 0xff));
  for (let i = 0; i < size / chunk.length; i++) expected.update(chunk);
  assert.equal(hash.digest("hex"), expected.digest("hex"));
  const grewMiB = (stalled - before) / 1024;
  assert.ok(grewMiB < 16, `the gateway grew by ${grewMiB.toFixed(1)} MiB while the browser stalled in a 50 MiB download`);
});

/** Reads websocket messages until `n` bytes have arrived. */
async function receiveBytes(ws: WsClient, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const part = await ws.receive();
    parts.push(part);
    got += part.length;
  }
  return Buffer.concat(parts);
}
