/**
 * `conductor` end to end: a private sshd, conductor-server as user
 * `conductor`, and the client as alice running the test app.
 */
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { VERSION } from "../../src/lib/version.ts";
import { isRoot, needsRoot } from "../helpers/env.ts";
import { defer } from "../helpers/cleanup.ts";
import { conductorCommand, startConductor, userDir } from "../helpers/conductor.ts";
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
  assert.deepEqual(states.filter((s) => s !== "data"), ["execute", "waiting", "connecting", "connect", "controlConnect", "live"]);
  assert.deepEqual(events.find((e) => e.state === "waiting"), { state: "waiting", socket: client.appSocket, timeout: 600, waited: 0 },
    "the wait for the app names its socket and the start timeout");
  assert.deepEqual(events.find((e) => e.state === "connecting"), { state: "connecting", user: sshd.loginName("alice"), host: "127.0.0.1", port: sshd.port, timeout: 30 },
    "the host is named before ssh starts, with its ConnectTimeout");
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
  assert.deepEqual(events.find((e) => e.state === "waiting"), { state: "waiting", socket: client.appSocket, timeout: 2, waited: 0 }, "the wait was announced");
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

test("conductor removes nothing but a stale socket at APP.SOCK: a file, a directory or another user's file is refused with exit 2 before anything runs", { skip: needsRoot }, async (t) => {
  const dir = userDir(t, "alice");
  const notes = join(dir, "notes.txt");
  writeFileSync(notes, "precious\n");
  const folder = join(dir, "folder");
  mkdirSync(folder);
  writeFileSync(join(folder, "inside"), "kept\n");
  chownSync(notes, account("alice").uid, account("alice").gid);
  // A directory every user may write in, as /tmp, holding bob's file.
  const shared = mkdtempSync(join(tmpdir(), "conductor-shared-"));
  defer(t, () => rmSync(shared, { recursive: true, force: true }));
  chmodSync(shared, 0o1777);
  const bobs = join(shared, "bob.sock");
  writeFileSync(bobs, "bob's\n");
  chownSync(bobs, account("bob").uid, account("bob").gid);

  for (const [path, what] of [[notes, "a regular file"], [folder, "a directory"], [bobs, "a regular file"]]) {
    const run = await conductorCommand(t, "alice", ["-k", "j5", "127.0.0.1:1", path, "--", "sleep", "1"], { XDG_STATE_HOME: join(dir, "state") });
    assert.equal(run.code, 2, `${path}: ${run.stdout} ${run.stderr}`);
    const events = run.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(events.map((e) => e.state), ["failed"], "nothing ran: no execute, no connecting");
    assert.equal(events[0].reason, `Cannot start the app: ${path} is not a socket (it is ${what}); choose another path`);
    assert.equal(run.stderr, "", "no Node error text");
  }
  assert.equal(readFileSync(notes, "utf8"), "precious\n");
  assert.equal(readFileSync(join(folder, "inside"), "utf8"), "kept\n");
  assert.equal(readFileSync(bobs, "utf8"), "bob's\n");
});

test("a gateway that never answers: ssh gives up after --connect-timeout with its own reason, named in the failed event", { skip }, async (t) => {
  // Accepts TCP connections and says nothing, as a host behind a dropping firewall would after the handshake.
  const silent = createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  defer(t, () => silent.close());
  const port = (silent.address() as AddressInfo).port;
  const dir = userDir(t, "alice");
  const run = await conductorCommand(t, "alice", ["--connect-timeout", "2s", "-k", "mute", `127.0.0.1:${port}`, join(dir, "app.sock"), "--", process.execPath, fixture("serve")],
    { XDG_STATE_HOME: join(dir, "state"), TMPDIR: dir, XDG_RUNTIME_DIR: "" });
  assert.equal(run.code, 1, run.stdout + run.stderr);
  const events = run.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(events.find((e) => e.state === "connecting"), { state: "connecting", user: null, host: "127.0.0.1", port, timeout: 2 });
  assert.match(String(events.find((e) => e.state === "failed")?.reason), new RegExp(`^Cannot connect to 127\\.0\\.0\\.1:${port}: .*Connection timed out during banner exchange`));
});

test("a destination that cannot be reached leaves no empty *.users directory in the runtime directory", { skip }, async (t) => {
  const dir = userDir(t, "alice");
  for (const destination of ["127.0.0.1:1", "nosuchhost.invalid"]) {
    const run = await conductorCommand(t, "alice", [destination, join(dir, "app.sock"), "--", process.execPath, fixture("serve")],
      { XDG_STATE_HOME: join(dir, "state"), TMPDIR: dir, XDG_RUNTIME_DIR: "" });
    assert.equal(run.code, 1, run.stdout + run.stderr);
  }
  const runtime = join(dir, `conductor-${isRoot ? account("alice").uid : process.getuid!()}`);
  assert.deepEqual(readdirSync(runtime).filter((n) => n.endsWith(".users")), [], "the failed masters leave no directory of users");
});

test("a wrong control socket path is named as no such socket, found by asking the gateway through the master", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, { ...gw, controlPath: join(gw.runtimeDir, "nosuch") }, { key: "lost" });
  assert.equal((await client.process.exited).code, 1);
  assert.equal(client.events().find((e) => e.state === "failed")?.reason,
    `Cannot reach the gateway's control socket ${gw.runtimeDir}/nosuch on 127.0.0.1: no such socket: there is no ${gw.runtimeDir}/nosuch on the gateway; ` +
    `check that conductor-server runs there (with --runtime-dir ${gw.runtimeDir}), or the control socket path (the /path after the gateway's host)`);
});

test("a runtime directory of mode 0700: the gateway warns at start, and the client says permission denied and what to change", { skip: skip || needsRoot }, async (t) => {
  const sshd = await startSshd(t);
  const runtimeDir = makeRuntimeDir(t);
  chmodSync(runtimeDir, 0o700);
  const gw = await startGateway(t, { runtimeDir });
  const warning = gw.process.json("stderr").find((l) => l.level === "warn" && String(l.msg).startsWith("Users cannot reach the control socket"));
  assert.equal(warning?.msg, `Users cannot reach the control socket ${gw.controlPath}: sshd connects to it as each user, and ${runtimeDir} is mode 0700 (owner uid ${account("conductor").uid}), which others may not enter; make it mode 0755 (chmod 755 ${runtimeDir})`);
  const client = startConductor(t, sshd, gw, { key: "locked" });
  assert.equal((await client.process.exited).code, 1);
  assert.equal(client.events().find((e) => e.state === "failed")?.reason,
    `Cannot reach the gateway's control socket ${gw.controlPath} on 127.0.0.1: permission denied: you may not enter ${runtimeDir}, the gateway's runtime directory; its admin must make it mode 0755, owned by the gateway's user`);
});

test("conductor check goes the way a run goes, prints each step and the gateway's banner, and names the step that fails", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const options = sshd.clientOptions("alice").flatMap((o) => ["-o", o]);
  const destination = `${sshd.loginName("alice")}@127.0.0.1:${sshd.port}`;
  const ok = await conductorCommand(t, "alice", ["check", ...options, `${destination}${gw.controlPath}`], { XDG_STATE_HOME: join(userDir(t, "alice"), "state") });
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  const lines = ok.stdout.split("\n");
  assert.deepEqual(lines.map((l) => l.slice(0, 16).trim()), ["ssh", "ssh", "control socket", "banner", "gateway", "domains", "ok"], ok.stdout);
  assert.equal(lines[0], `ssh             connecting to 127.0.0.1 port ${sshd.port} as ${sshd.loginName("alice")} (ConnectTimeout 30 s)`);
  assert.equal(lines[2], `control socket  ${gw.controlPath} answered`);
  assert.match(lines[3], new RegExp(`^banner          ok, directory ${gw.runtimeDir}/sockets/`));
  assert.equal(lines[4], `gateway         conductor-server ${VERSION}`);
  assert.equal(lines[5], `domains         ${gw.host("{key}", "{user}")}`);

  const wrong = await conductorCommand(t, "alice", ["check", ...options, `${destination}${gw.runtimeDir}/nosuch`]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /^conductor: check failed at the control socket step: Cannot reach the gateway's control socket .*: no such socket/);
  const refused = await conductorCommand(t, "alice", ["check", "--connect-timeout", "5", ...options, "127.0.0.1:1"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^conductor: check failed at the ssh step: Cannot connect to 127\.0\.0\.1:1: ssh: connect to host 127\.0\.0\.1 port 1: Connection refused/);
});
