/**
 * --max-app-connections through the front end, in process: at the cap, a
 * request waits for a freed connection and is then served; past the queue
 * the browser gets 503 with Retry-After at once; the app's own requests in
 * progress are unaffected.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DEFAULT_POOL_OPTIONS } from "../../src/gateway/pool.ts";
import { startGateway } from "../../src/server/service.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { defer } from "../helpers/cleanup.ts";
import { request } from "../helpers/http.ts";
import { register } from "../helpers/register.ts";
import { waitFor } from "../helpers/wait.ts";

const TOKEN = "app-cap-token-012345";

test("at --max-app-connections a request waits for a freed connection; beyond the queue it gets 503 with Retry-After", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "conductor-appcap-"));
  chmodSync(dir, 0o755);
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const gw = await startGateway({ port: 0, bind: "127.0.0.1", runtimeDir: dir, stateDir: join(dir, "state"), domains: [], trustForwarded: false,
    pool: { ...DEFAULT_POOL_OPTIONS, maxOpen: 2, maxWaiting: 1, waitMs: 600_000 } }, silentLogger);
  defer(t, () => gw.close());
  const port = (gw.address as { port: number }).port;
  const reg = await register(t, gw.control.path, { key: "capped", token: TOKEN, user: null });
  const host = (reg.reply.urls as string[])[0];
  const get = (path: string) => request({ port, host, path, headers: { Cookie: `authorization=${TOKEN}` } });
  const status = async () => JSON.parse((await request({ port, host, path: "/_conductor/status" })).text) as { upstreamOpen: number; appWaiting: number; appBusy: number };

  // Two requests the app holds take both connections.
  const held = [get("/hold"), get("/hold")];
  assert.ok(await waitFor(async () => (await status()).upstreamOpen === 2), "both connections are open");
  const queued = get("/hello");
  assert.ok(await waitFor(async () => (await status()).appWaiting === 1), "the third request waits");
  const refused = await get("/hello");
  assert.equal(refused.status, 503, "the fourth finds the queue full");
  assert.equal(refused.headers["retry-after"], "5");
  assert.match(refused.text, /The app at this address is busy/);
  assert.equal((await status()).appBusy, 1);

  // Released from the app's side (the gateway has no connection to spare); the second may still be on its way to the app.
  let released = 0;
  let asked = 0;
  assert.ok(await waitFor(async () => {
    reg.process.child.stdin!.write("release\n");
    const round = ++asked;
    let seen = 0;
    released += (await reg.process.waitForJson((l) => l.event === "released" && ++seen === round)).count as number;
    return released === 2;
  }), `both held requests are released: ${released}`);
  for (const answer of await Promise.all(held)) assert.equal(answer.text, "released\n", "the held requests were not disturbed");
  assert.equal((await queued).text, "hello\n", "the waiting request is served on a freed connection");
  assert.equal((await status()).appWaiting, 0);
});
