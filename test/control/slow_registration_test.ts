/**
 * The config time limit is for sending the config, not for the gateway's
 * work on it: a registration that takes longer than the limit is answered,
 * not cut (in-process, with a short limit, as the suite's own user).
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createHash } from "node:crypto";
import { silentLogger } from "../../src/lib/log.ts";
import { startGateway } from "../../src/server/service.ts";
import { DEFAULT_STREAM_SETTINGS, type StreamSettings } from "../../src/streams/settings.ts";
import { stopStreams } from "../../src/streams/switchboard.ts";
import { defer } from "../helpers/cleanup.ts";
import { request } from "../helpers/http.ts";
import { NGINX, nginxMissing, STREAM_MODULE } from "../helpers/nginx.ts";
import { nginxIn } from "../helpers/procs.ts";
import { freePortRange } from "../helpers/streams.ts";
import { waitFor } from "../helpers/wait.ts";

const skip = nginxMissing || (existsSync(STREAM_MODULE) ? false : "nginx's stream module is not installed (apt-get install libnginx-mod-stream)");

/** Everything `path`'s control socket says to a connection that sends nothing, until it closes. */
function silentConnection(path: string): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    const socket = connect(path);
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => { text += c; });
    socket.on("error", () => {});
    socket.on("close", () => resolve(text));
  });
}

/** Registers stream `name` over `path`'s control socket from a socket of this process; resolves once the config is sent, with the reply to come. */
async function registerStream(path: string, name: string, servers: Server[]): Promise<{ reply: Promise<Record<string, unknown>> }> {
  const control = connect(path);
  control.setEncoding("utf8");
  let text = "";
  const lines: string[] = [];
  let wake = (): void => {};
  control.on("data", (c: string) => { text += c; let nl; while ((nl = text.indexOf("\n")) !== -1) { lines.push(text.slice(0, nl)); text = text.slice(nl + 1); } wake(); });
  control.on("close", () => wake());
  const line = async (): Promise<string> => {
    while (lines.length === 0) {
      if (control.destroyed) throw new Error("the control connection closed");
      await new Promise<void>((resolve) => { wake = resolve; });
    }
    return lines.shift()!;
  };
  const { directory } = JSON.parse(await line());
  const server = createServer((s) => s.destroy());
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(join(directory, "socket"), resolve));
  chmodSync(join(directory, "socket"), 0o660);
  control.write(JSON.stringify({ auth: createHash("blake2b512").update(name).digest("hex"), key: name, kind: "tcp" }) + "\n");
  return { reply: line().then((l) => JSON.parse(l), () => ({ status: "closed" })) };
}

test("a stream registration queued behind an admin's reload of a stalled nginx outlasts the config time limit and is answered, not cut", { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "conductor-slow-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const range = await freePortRange(2);
  const settings: StreamSettings = { ...DEFAULT_STREAM_SETTINGS, range, host: "127.0.0.1", nginx: NGINX, module: STREAM_MODULE };
  defer(t, () => stopStreams(settings, dir, silentLogger));
  const adminSocket = join(dir, "admin.sock");
  const gw = await startGateway({
    port: 0, bind: "127.0.0.1", runtimeDir: dir, stateDir: join(dir, "state"), domains: [], trustForwarded: false, configTimeoutMs: 2000,
    streams: settings, admin: { socket: { path: adminSocket, mode: 0o600 } },
  }, silentLogger);
  defer(t, () => gw.close());
  const servers: Server[] = [];
  defer(t, () => { for (const s of servers) s.close(); });

  // nginx stalls (stopped, as a machine out of memory might leave it): an admin's stream to an address reloads it, and waits.
  const master = nginxIn(join(dir, "nginx")).find((p) => p.cmdline.startsWith("nginx: master"))!;
  process.kill(master.pid, "SIGSTOP");
  defer(t, () => process.kill(master.pid, "SIGCONT"));
  const echo = createServer((s) => s.pipe(s));
  servers.push(echo);
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  const backend = `127.0.0.1:${(echo.address() as { port: number }).port}`;
  const created = request({ port: 0, host: "admin", path: `/createstream/${range.first}/${backend}`, socketPath: adminSocket });
  const block = join(dir, "nginx", "stream.d", `_conductor_${range.first}.conf`);
  assert.ok(await waitFor(() => readFileSync(block, "utf8").includes(`proxy_pass ${backend};`)), "the admin's change is under way");

  // A user's stream waits behind it.
  const user = await registerStream(gw.control.path, "db", servers);
  // A connection opened after the user sent the config is cut by the time limit: the user's limit has passed too.
  assert.match(await silentConnection(gw.control.path), /"Cannot register: nothing came within 2 s of the banner"/);
  process.kill(master.pid, "SIGCONT");
  assert.equal((await created).status, 200);
  const reply = await user.reply;
  assert.equal(reply.status, "ok", JSON.stringify(reply));
  assert.equal(reply.port, range.first + 1);
});
