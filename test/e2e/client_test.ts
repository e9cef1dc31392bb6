/**
 * `conductor` end to end: a private sshd, conductor-server as user
 * `conductor`, and the client as alice running the test app.
 */
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { get as httpGet } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { isRoot } from "../helpers/env.ts";
import { startConductor } from "../helpers/conductor.ts";
import { account } from "../helpers/accounts.ts";
import { makeRuntimeDir, startGateway, type TestGateway } from "../helpers/gateway.ts";
import { fixture } from "../helpers/install.ts";
import { startProcess } from "../helpers/process.ts";
import { hashToken } from "../../src/lib/token.ts";
import { request } from "../helpers/http.ts";
import { isAlive, processesMatching, waitGone } from "../helpers/procs.ts";
import { sshdMissing, startSshd } from "../helpers/sshd.ts";
import { waitFor } from "../helpers/wait.ts";

const skip = sshdMissing;

test("conductor publishes the app through sshd: the cookie opens it, no cookie gets 403", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, gw, { key: "lab", token: "opensesame-0123456" });
  const live = await client.live();
  assert.deepEqual(live, { auth: "opensesame-0123456", key: "lab", urls: [gw.host("lab", sshd.loginName("alice"))], name: "lab" });
  const host = live.urls[0];
  const ok = await request({ port: gw.port, host, path: "/hello", headers: { Cookie: "authorization=opensesame-0123456" } });
  assert.equal(ok.status, 200);
  assert.equal((await request({ port: gw.port, host, path: "/hello" })).status, 403);

  const events = client.events();
  const states = events.map((e) => e.state);
  assert.deepEqual(states.filter((s) => s !== "data"), ["execute", "connect", "controlConnect", "live"]);
  const data = events.find((e) => e.state === "data");
  assert.match(String(data?.data), /listening on .*app\.sock, token hidden/, "the app sees CONDUCTOR_SOCKET and not CONDUCTOR_TOKEN");
  assert.deepEqual(events.find((e) => e.state === "connect"), { state: "connect", user: sshd.loginName("alice"), host: "127.0.0.1", port: sshd.port });
  assert.equal((events.find((e) => e.state === "controlConnect")?.path), gw.controlPath);
  assert.match(client.process.stdout.find((l) => l.includes('"live"'))!, /^\{"state": "live", "config": \{"auth": "opensesame-0123456", "key": "lab", "urls": \[/,
    "events are printed as the original printed them");
});

test("conductor reconnects when the SSH master dies and when the gateway restarts", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, gw, { key: "lab", token: "steady-token-0123" });
  const first = await client.live();
  const hello = () => request({ port: gw.port, host: first.urls[0], path: "/hello", headers: { Cookie: "authorization=steady-token-0123" } });
  assert.equal((await hello()).status, 200);

  const masters = processesMatching(`-p ${sshd.port} -l ${sshd.loginName("alice")}`).filter((p) => p.cmdline.includes("ControlMaster=yes"));
  assert.equal(masters.length, 1, JSON.stringify(masters));
  process.kill(masters[0].pid, "SIGKILL");
  // While the client reconnects, browsers are told to try again (502/503), never "not found".
  const during: number[] = [];
  let reconnected = false;
  const polling = (async () => {
    while (!reconnected) {
      during.push((await hello()).status);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const second = await client.live(2).finally(() => { reconnected = true; });
  await polling;
  assert.deepEqual(second, first, "live again with the same token and URLs");
  assert.ok(client.events().some((e) => e.state === "dead"));
  assert.deepEqual(during.filter((s) => ![200, 502, 503].includes(s)), [], `statuses during the reconnect: ${during.join(" ")}`);
  assert.equal((await hello()).status, 200);

  await gw.stop();
  const again = await startGateway(t, { runtimeDir: gw.runtimeDir, args: [] });
  const third = await client.live(3);
  assert.equal(third.auth, first.auth);
  assert.equal((await request({ port: again.port, host: third.urls[0], path: "/hello", headers: { Cookie: "authorization=steady-token-0123" } })).status, 200);
});

test("an app exiting with status 3 ends conductor with status 1 and leaves nothing behind", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, gw, { key: "short", command: [process.execPath, fixture("serve"), "--exit", "3"] });
  const live = await client.live();
  const app = client.events().find((e) => e.state === "execute")!;
  process.kill(app.pid as number, "SIGUSR2");
  const { code } = await client.process.exited;
  assert.equal(code, 1);
  const events = client.events();
  assert.deepEqual(events.at(-1), { state: "exit", status: 3 });
  assert.deepEqual(await waitGone(client.dir), [], "the app is gone");
  assert.deepEqual(await waitGone(`-p ${sshd.port} -l ${sshd.loginName("alice")}`), [], "no ssh process is left");
  assert.equal(existsSync(client.appSocket), false, "the app socket is removed");
  const runtime = "/tmp/conductor-" + (isRoot ? account("alice").uid : process.getuid!());
  const leftovers = existsSync(runtime) ? readdirSync(runtime).filter((n) => !n.endsWith(".lock")) : [];
  assert.deepEqual(leftovers.filter((n) => n.startsWith("run-" + client.process.pid)), [], "the run's directory is removed");
  assert.ok(await waitFor(() => readdirSync(join(gw.runtimeDir, "sockets")).length === 0), "the gateway removed the client directory");
  // A failed app may be restarted (by a supervisor, a requeued job): its address says "try again", not "not found".
  assert.equal((await request({ port: gw.port, host: live.urls[0], path: "/hello", headers: { Cookie: `authorization=${live.auth}` } })).status, 503);
});

test("an app exiting 0 before it ever listens is a failure, and says so", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, gw, { key: "never", command: [process.execPath, "-e", "process.exit(0)"] });
  const { code } = await client.process.exited;
  assert.equal(code, 1);
  const events = client.events();
  assert.match(String(events.find((e) => e.state === "failed")?.reason), /Cannot publish the app: it exited \(status 0\) before listening on .*app\.sock/);
  assert.deepEqual(events.at(-1), { state: "exit", status: 0 });
});

test("an app that never listens is given up after --start-timeout: a failed event names the socket, the app is stopped, exit 1", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, gw, { key: "mute", args: ["--start-timeout", "2s"], command: [process.execPath, "-e", "setInterval(() => {}, 1000)"] });
  const { code } = await client.process.exited;
  assert.equal(code, 1);
  const events = client.events();
  assert.match(String(events.find((e) => e.state === "failed")?.reason),
    /^Cannot publish the app: it did not listen on .*app\.sock within 2 s \(--start-timeout\); check that its command makes it listen there/);
  const app = events.find((e) => e.state === "execute")!.pid as number;
  assert.ok(await waitFor(() => !isAlive(app)), "the app is stopped");
  assert.ok(events.some((e) => e.state === "exit"), "its end is reported");
});

test("conductor exits 2 when the app socket is in use, and -r replaces the listener", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const first = startConductor(t, sshd, gw, { key: "one" });
  await first.live();
  const clash = startConductor(t, sshd, gw, { key: "two", appSocket: first.appSocket });
  assert.equal((await clash.process.exited).code, 2);
  assert.match(String(clash.events().find((e) => e.state === "failed")?.reason), /in use by pid \d+; stop it, or run with --replace/);

  const replacing = startConductor(t, sshd, gw, { key: "two", appSocket: first.appSocket, args: ["-r"] });
  const live = await replacing.live();
  assert.equal((await request({ port: gw.port, host: live.urls[0], path: "/hello", headers: { Cookie: `authorization=${live.auth}` } })).status, 200);
  // The first run's app was stopped, so the first run ends with it.
  await first.process.exited;
  assert.deepEqual(first.events().at(-1)?.state, "exit");
});

test("a SIGTERM to conductor stops the app and exits 0 after the exit event", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, gw, { key: "stopme" });
  const live = await client.live();
  client.process.child.kill("SIGTERM");
  assert.equal((await client.process.exited).code, 0);
  assert.equal(client.events().at(-1)?.state, "exit");
  assert.equal((await request({ port: gw.port, host: live.urls[0], path: "/hello" })).status, 404, "a stopped run says goodbye: its route is gone at once");
  assert.deepEqual(await waitGone(client.dir), []);
  assert.deepEqual(await waitGone(`-p ${sshd.port} -l ${sshd.loginName("alice")}`), []);
});

test("two runs share one SSH master, which goes when the last run ends", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const a = startConductor(t, sshd, gw, { key: "a", args: ["-v"] });
  await a.live();
  const b = startConductor(t, sshd, gw, { key: "b", args: ["-v"] });
  await b.live();
  assert.ok(b.process.json("stderr").some((l) => l.msg === "reusing SSH master"), b.process.stderr.join("\n"));
  const masters = () => processesMatching(`-p ${sshd.port} -l ${sshd.loginName("alice")}`).filter((p) => p.cmdline.includes("ControlMaster=yes"));
  assert.equal(masters().length, 1);
  a.process.child.kill("SIGTERM");
  await a.process.exited;
  assert.equal(masters().length, 1, "b still uses the master");
  const live = b.events().find((e) => e.state === "live")!.config as { urls: string[]; auth: string };
  assert.equal((await request({ port: gw.port, host: live.urls[0], path: "/hello", headers: { Cookie: `authorization=${live.auth}` } })).status, 200);
  b.process.child.kill("SIGTERM");
  await b.process.exited;
  assert.deepEqual(await waitGone(`-p ${sshd.port} -l ${sshd.loginName("alice")}`), []);
});

test("conductor works against a control socket that answers as the original server", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const runtimeDir = makeRuntimeDir(t);
  const sockets = join(runtimeDir, "sockets");
  mkdirSync(sockets, { mode: 0o771 });
  chmodSync(sockets, 0o771);
  if (isRoot) chownSync(sockets, account("conductor").uid, account("conductor").gid);
  const controlPath = join(runtimeDir, "client");
  const original = startProcess(t, process.execPath, [fixture("original_server"), controlPath, sockets], { user: "conductor" });
  await original.waitForJson((l) => l.event === "listening");
  const fake = { controlPath, runtimeDir, port: 0 } as TestGateway;
  const client = startConductor(t, sshd, fake, { key: "Old", token: "legacy-token-0123" });
  const live = await client.live();
  assert.deepEqual(live, { auth: "legacy-token-0123", key: "old", urls: ["old-user.example.org"], name: "old" });
  const config = await original.waitForJson((l) => l.event === "config");
  assert.equal(config.raw, `{"auth": "${hashToken("legacy-token-0123")}", "key": "old"}`, "the config line is byte for byte the original client's");
  const banner = client.events().find((e) => e.state === "controlConnect")!.banner as Record<string, string>;
  assert.equal(banner.status, "ok");
  // The forwarded socket carries requests to the app.
  const route = await original.waitForJson((l) => l.event === "route");
  const res = await new Promise<number>((resolve, reject) => {
    httpGet({ socketPath: String(route.socket), path: "/hello", headers: { Host: "x" } }, (r) => { r.resume(); resolve(r.statusCode ?? 0); }).on("error", reject);
  });
  assert.equal(res, 200);
});

test("a master that refuses a new session (sshd's MaxSessions) is an error that says so, not a silent new connection", { skip }, async (t) => {
  const sshd = await startSshd(t, { config: ["MaxSessions 1"] });
  const gw = await startGateway(t);
  const first = startConductor(t, sshd, gw, { key: "first" });
  await first.live();
  // A session held open through the shared master takes the only one sshd allows per connection.
  const master = processesMatching(`-p ${sshd.port} -l ${sshd.loginName("alice")}`).find((p) => p.cmdline.includes("ControlMaster=yes"))!;
  const controlPath = /ControlPath=(\S+)/.exec(master.cmdline)![1];
  const holder = startProcess(t, "ssh", ["-S", controlPath, "-o", "ControlMaster=no", "-T", "-p", String(sshd.port), "-l", sshd.loginName("alice"), "--", "127.0.0.1",
    "echo holding; exec sleep 600"], { user: "alice" });
  await holder.waitForLine((l) => l === "holding");
  const second = startConductor(t, sshd, gw, { key: "second" });
  const failed = await second.process.waitForJson((e) => e.state === "failed" || e.state === "live");
  assert.equal(failed.state, "failed", second.process.stderr.join("\n"));
  assert.match(failed.reason as string, /the SSH connection refused a new session, as sshd's MaxSessions \(10 by default\) is reached/);
  assert.equal((await second.process.exited).code, 1);
  assert.equal(processesMatching(`-p ${sshd.port} -l ${sshd.loginName("alice")}`).filter((p) => p.cmdline.includes("ControlMaster=yes")).length, 1, "no second connection was made");
});
