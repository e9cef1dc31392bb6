/**
 * Stopping the gateway (SIGTERM does this) while browsers hold websockets:
 * the tunnels end at once instead of keeping the process alive.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startGateway } from "../../src/server/service.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { defer } from "../helpers/cleanup.ts";
import { request } from "../helpers/http.ts";
import { register } from "../helpers/register.ts";
import { openWebSocket } from "../helpers/websocket.ts";

const TOKEN = "shutdown-token-0123";

test("close() ends open websocket tunnels at once, and counts them as open connections until then", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "conductor-shutdown-"));
  chmodSync(dir, 0o755);
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const gw = await startGateway({ port: 0, bind: "127.0.0.1", runtimeDir: dir, stateDir: join(dir, "state"), domains: [], trustForwarded: false,
    // Responses in progress may take all the time they need: only the tunnels could keep close() waiting.
    shutdownGraceMs: 600_000 }, silentLogger);
  defer(t, () => gw.close());
  const port = (gw.address as { port: number }).port;
  const reg = await register(t, gw.control.path, { key: "ws", token: TOKEN, user: null });
  const host = (reg.reply.urls as string[])[0];

  const sockets = await Promise.all([1, 2, 3].map(() => openWebSocket({ port, host, path: "/ws", headers: { Cookie: `authorization=${TOKEN}` } })));
  sockets[0].send("still open");
  assert.equal((await sockets[0].receive()).toString(), "still open");
  const status = JSON.parse((await request({ port, host, path: "/_conductor/status" })).text) as { connectionActive: number; upgradeActive: number };
  assert.equal(status.upgradeActive, 3);
  assert.ok(status.connectionActive >= 3, `the tunnels are open connections: ${JSON.stringify(status)}`);

  // Were a tunnel counted as a response in progress, close() would wait out the ten-minute grace.
  const closed = await Promise.race([gw.close().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 60_000).unref())]);
  assert.ok(closed, "close() finished without waiting out the grace period");
});
