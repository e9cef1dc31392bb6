/**
 * `--nginx-mode site`: the gateway runs no nginx; it writes the limit zones
 * and a block per port into --stream-dir, which the site's nginx includes
 * (started or reloaded once, at setup), and registrations only swap links.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { needsRoot, repoRoot } from "../helpers/env.ts";
import { makeRuntimeDir, startGateway } from "../helpers/gateway.ts";
import { bin } from "../helpers/install.ts";
import { nginxMissing, startNginx, STREAM_MODULE } from "../helpers/nginx.ts";
import { register } from "../helpers/register.ts";
import { exchangeFrom, freePortRange, tcpExchange } from "../helpers/streams.ts";

const skip = needsRoot || nginxMissing || (existsSync(STREAM_MODULE) ? false : "nginx's stream module is not installed (apt-get install libnginx-mod-stream)");

test("--nginx-mode site: the site's nginx, set up once with the gateway's blocks, relays streams that registrations publish and remove without touching it", { skip }, async (t) => {
  const range = await freePortRange(2);
  const runtimeDir = makeRuntimeDir(t);
  const streamDir = join(runtimeDir, "site-streams");
  const gw = await startGateway(t, { runtimeDir, args: ["--port-range", range.text, "--stream-host", "127.0.0.1", "--nginx-mode", "site", "--stream-dir", streamDir] });
  assert.ok(gw.process.json("stderr").some((l) => /^the site's nginx does not listen on some stream ports: have the site's nginx include/.test(l.msg as string)),
    "before the site's nginx includes the blocks, the gateway says what to do");
  const files = readdirSync(streamDir).sort();
  assert.deepEqual(files, [`_conductor_${range.first}.conf`, `_conductor_${range.last}.conf`, "_conductor_zones.conf"]);
  const printed = execFileSync(process.execPath, [bin("conductor-server"), "-r", runtimeDir, "--port-range", range.text, "--nginx-mode", "site", "--stream-dir", streamDir, "--print-stream-config"], { encoding: "utf8" });
  assert.equal(printed, ["_conductor_zones.conf", `_conductor_${range.first}.conf`, `_conductor_${range.last}.conf`].map((f) => readFileSync(join(streamDir, f), "utf8")).join("\n"),
    "--print-stream-config prints what the gateway writes");

  // The site's setup, once, with contrib's snippet: its stream {} block includes the gateway's files; its workers are in the gateway's group.
  const snippet = readFileSync(join(repoRoot, "contrib", "nginx-conductor-streams.conf"), "utf8");
  assert.ok(snippet.includes("/var/lib/conductor/streams.d/"), "contrib's snippet names the stream directory of its comments");
  const site = await startNginx(t, snippet.replaceAll("/var/lib/conductor/streams.d/", `${streamDir}/`), { user: "conductor", modules: [STREAM_MODULE] });
  const sitePid = site.process.pid;
  const reg = await register(t, gw.controlPath, { key: "db", token: "stream-token-0123", extra: { kind: "tcp" } });
  assert.equal(reg.reply.status, "ok", JSON.stringify(reg.reply));
  const port = reg.reply.port as number;
  assert.match((await tcpExchange(port, "GET /hello HTTP/1.1\r\nHost: stream\r\nConnection: close\r\n\r\n")).toString(), /^HTTP\/1\.1 200 .*hello/s);
  await reg.end();
  assert.ok(await gw.process.waitForJson((l) => l.msg === "stream removed" && l.port === port, 60_000, "stderr"));
  assert.equal((await exchangeFrom(port, "GET /hello HTTP/1.0\r\n\r\n")).length, 0, "the port relays nothing once the stream is gone");
  assert.deepEqual(readdirSync(streamDir).sort(), files, "the site's files stay as they were");
  assert.equal(site.process.pid, sitePid, "and the site's nginx was never touched");
});
