/**
 * conductor under a real systemd (252, Debian 12 booted with systemd-nspawn),
 * installed from the release tarball as the README says (make install,
 * make install-systemd, the units enabled): alice publishes a web app and a
 * TCP stream over ssh to 127.0.0.1; the app answers through the socket unit
 * with the auth link and its cookie; the gateway keeps its routes across
 * systemctl reload, restart and stop (the request that wakes it included).
 * Once with the suite's own Node.js copied in, once with Debian's. A TCP
 * connection through a stream goes on across systemctl restart, a crash and
 * systemctl stop (KillMode=process), until --stop-streams ends it; a gateway
 * that fails at each start is started again without end and the socket unit
 * stays. Then conductor-agent.service under alice's user manager locks when
 * idle, and conductor --agent unlocks it and connects with its key alone.
 * Last, the gateway in --nginx-mode site, set up as conductor-server(8) and
 * contrib/nginx-conductor-streams.conf say, behind Debian's nginx.service:
 * a stream published, removed and published again relays through it with
 * no reload, and no nginx of the gateway's own runs.
 *
 * Needs root, systemd-nspawn and mmdebstrap (.ci/run installs them); under CI
 * it fails rather than skips.
 */
import assert from "node:assert/strict";
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it, type TestContext } from "node:test";
import { VERSION } from "../../src/lib/version.ts";
import { suiteCleanup } from "../helpers/cleanup.ts";
import { bootContainer, containerMissing, debianRootfs, type Container } from "../helpers/container.ts";
import type { TestProcess } from "../helpers/process.ts";
import { buildTarball } from "../helpers/release.ts";

/** Skipped only outside CI: CI has what it needs, so a reason to skip there is a failure. */
const skip = process.env.CI === "true" ? false : containerMissing;
/** Where the suite's own Node.js goes in the container. */
const HOST_NODE = "/opt/host-node/bin/node";
/** Debian's Node.js. */
const DEBIAN_NODE = "/usr/bin/node";
const DOMAIN = "{key}-{user}.gw.test";
/** The front end's socket, held by conductor-server.socket. */
const FRONT = "/run/conductor-http.sock";
/** The installed unit, and the drop-in `systemctl edit conductor-server.service` writes. */
const OVERRIDE = "/etc/systemd/system/conductor-server.service.d/override.conf";
/** The drop-in's command line: the gateway behind the socket unit, for DOMAIN, and `extra`. */
const execStart = (...extra: string[]): string => "[Service]\nExecStart=\nExecStart=/usr/local/sbin/conductor-server --runtime-dir /run/conductor " +
  `--state-dir /var/lib/conductor --trust-forwarded --domain '${DOMAIN}'${extra.map((arg) => ` ${arg}`).join("")}\n`;
/** Where the gateway writes its stream blocks for the site's nginx (--nginx-mode site): in its StateDirectory=, which its sandbox lets it write. */
const STREAM_DIR = "/var/lib/conductor/streams.d";
/** Where `make install` puts contrib/. */
const CONTRIB = "/usr/local/share/doc/conductor/contrib";

/** Apps and a TCP client, for any Node.js from 12 on. */
const FILES: Record<string, string> = {
  "/opt/check/web.cjs": 'require("http").createServer((req, res) => res.end("hello from " + process.version + "\\n")).listen(process.env.CONDUCTOR_SOCKET);\n',
  "/opt/check/echo.cjs": 'require("net").createServer((s) => s.pipe(s)).listen(process.env.CONDUCTOR_SOCKET);\n',
  // Sends a line to 127.0.0.1:PORT and prints what comes back once it has all of it.
  "/opt/check/echo-client.cjs": [
    'const line = "ping " + process.argv[3] + "\\n";',
    'const s = require("net").connect(Number(process.argv[2]), "127.0.0.1", () => s.write(line));',
    'let got = "";',
    's.on("data", (d) => { got += d; if (got === line) { process.stdout.write(got); s.end(); } });',
    's.on("error", (e) => { console.error(e.message); process.exit(1); });',
    "",
  ].join("\n"),
  // Holds one connection to 127.0.0.1:PORT: at each SIGUSR2 sends "ping N", prints each line that comes back, and "closed" at the end.
  "/opt/check/hold-client.cjs": [
    'const s = require("net").connect(Number(process.argv[2]), "127.0.0.1");',
    "let n = 0;",
    'let got = "";',
    's.on("connect", () => { process.on("SIGUSR2", () => s.write("ping " + ++n + "\\n")); console.log("connected"); });',
    's.on("data", (d) => { got += d; for (let i; (i = got.indexOf("\\n")) >= 0; got = got.slice(i + 1)) console.log(got.slice(0, i)); });',
    's.on("close", () => { console.log("closed"); process.exit(0); });',
    's.on("error", (e) => console.error(e.message));',
    "",
  ].join("\n"),
};

describe("conductor installed from the tarball, under systemd as PID 1", { skip }, () => {
  const cleanup = suiteCleanup();
  let c: Container;
  let uid: string;

  before(async () => {
    if (containerMissing) throw new Error(`Cannot run the systemd check: ${containerMissing}`);
    const tarball = buildTarball(cleanup);
    c = await bootContainer(cleanup, await debianRootfs());
    mkdirSync(join(c.root, "opt/host-node/bin"), { recursive: true });
    cpSync(process.execPath, join(c.root, HOST_NODE));
    mkdirSync(join(c.root, "opt/check"));
    for (const [path, text] of Object.entries(FILES)) writeFileSync(join(c.root, path), text);
    cpSync(tarball, join(c.root, "root/conductor.tar.gz"));

    // The README's Install section, as root.
    await c.run(["useradd", "--system", "--user-group", "--home-dir", "/var/lib/conductor", "--shell", "/usr/sbin/nologin", "conductor"]);
    await c.run(["tar", "-xzf", "/root/conductor.tar.gz", "-C", "/root"]);
    await c.run(["make", "-C", `/root/conductor-${VERSION}`, "install", `NODE=${HOST_NODE}`, "install-systemd"]);
    await c.run(["cp", `${CONTRIB}/sshd_config.conductor`, "/etc/ssh/sshd_config.d/conductor.conf"]);
    await c.run(["systemctl", "restart", "ssh"]);
    await c.run(["mkdir", "-p", OVERRIDE.slice(0, OVERRIDE.lastIndexOf("/"))]);
    writeFileSync(join(c.root, OVERRIDE), execStart());
    await c.run(["systemctl", "daemon-reload"]);
    await c.run(["systemctl", "enable", "--now", "conductor-server.socket", "conductor-server.service"]);

    // alice, with a key the gateway's sshd takes and its host key known.
    await c.run(["useradd", "--create-home", "--shell", "/bin/bash", "alice"]);
    uid = (await c.run(["id", "-u", "alice"])).trim();
    await c.run(["sh", "-c", 'mkdir -m 700 -p ~/.ssh && ssh-keygen -q -t ed25519 -N "" -C alice -f ~/.ssh/id_ed25519 && ' +
      "cp ~/.ssh/id_ed25519.pub ~/.ssh/authorized_keys && " +
      'echo "127.0.0.1 $(cut -d " " -f 1,2 /etc/ssh/ssh_host_ed25519_key.pub)" > ~/.ssh/known_hosts'], { user: "alice" });
  });

  /** Starts `conductor ARGS...` as alice; it ends (SIGTERM) with the test `t`. */
  const conductor = (t: TestContext, args: string[]): TestProcess => {
    const client = c.start(["conductor", ...args], { user: "alice" });
    t.after(async () => {
      c.kill(client);
      await client.exited;
    });
    return client;
  };

  /** The `n`th "live" event of a client. */
  const live = async (client: TestProcess, n = 1): Promise<Record<string, unknown>> => {
    let seen = 0;
    const line = await client.waitForJson((l) => l.state === "live" && ++seen === n, 60_000);
    return line.config as Record<string, unknown>;
  };

  /** A request through the socket unit, as nginx's workers make it (user www-data). */
  const get = async (host: string, path: string, jar: "save" | "send"): Promise<{ status: number; head: string; body: string }> => {
    const out = await c.run(["curl", "-sS", "--unix-socket", FRONT, "-D", "-", jar === "save" ? "-c" : "-b", "/tmp/jar",
      `http://${host}${path}`], { user: "www-data" });
    const [head, body] = out.split("\r\n\r\n", 2);
    return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]), head, body };
  };

  /** A line sent through a TCP stream comes back. */
  const echoes = async (port: unknown, tag: string): Promise<void> => {
    assert.equal(await c.run([DEBIAN_NODE, "/opt/check/echo-client.cjs", String(port), tag]), `ping ${tag}\n`);
  };

  /** The gateway's main process (once it answers): its interpreter, capabilities and user. */
  const gateway = async (): Promise<{ pid: string; exe: string; caps: string; user: string }> => {
    const pid = (await c.run(["systemctl", "show", "--value", "--property=MainPID", "conductor-server.service"])).trim();
    const status = await c.run(["cat", `/proc/${pid}/status`]);
    return {
      pid,
      exe: (await c.run(["readlink", `/proc/${pid}/exe`])).trim(),
      caps: /^CapEff:\s+(\S+)/m.exec(status)![1],
      user: (await c.run(["ps", "-o", "user=", "-p", pid])).trim(),
    };
  };

  /** Properties of the gateway's service, as `systemctl show` gives them. */
  const service = async (...names: string[]): Promise<Record<string, string>> => {
    const out = await c.run(["systemctl", "show", ...names.map((n) => `--property=${n}`), "conductor-server.service"]);
    return Object.fromEntries(out.trim().split("\n").map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
  };

  /**
   * Debian's nginx (nginx.service): its master, its workers that serve (not those a reload leaves shutting down),
   * and every other nginx process in the container.
   */
  const siteNginx = async (): Promise<{ master: string; workers: string[]; strays: string[] }> => {
    const master = (await c.run(["cat", "/run/nginx.pid"])).trim();
    const procs = (await c.run(["ps", "-C", "nginx", "-o", "pid=,ppid=,user=,args="])).trim().split("\n").map((line) => {
      const [pid, ppid, user, ...args] = line.trim().split(/\s+/);
      return { pid, ppid, user, args: args.join(" ") };
    });
    const mine = (p: { pid: string; ppid: string; user: string }): boolean => (p.pid === master && p.user === "root") || (p.ppid === master && p.user === "www-data");
    return {
      master,
      workers: procs.filter((p) => p.ppid === master && p.args === "nginx: worker process").map((p) => p.pid).sort(),
      strays: procs.filter((p) => !mine(p)).map((p) => `${p.pid} ${p.user} ${p.args}`),
    };
  };

  /** Asks `probe` every 200 ms until it returns something other than null; the time limit is a failure guard. */
  const until = async <T>(what: string | (() => string), probe: () => Promise<T | null>): Promise<T> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const value = await probe();
      if (value !== null) return value;
      assert.ok(Date.now() < deadline, typeof what === "string" ? `never ${what}` : what());
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  for (const [label, node] of [["the suite's own Node.js", HOST_NODE], ["Debian's own Node.js", DEBIAN_NODE]]) {
    it(`with ${label}: an app through the socket unit and a stream, across systemctl reload, restart and stop`, async (t) => {
      await c.run(["make", "-C", `/root/conductor-${VERSION}`, "install", `NODE=${node}`]);
      await c.run(["systemctl", "restart", "conductor-server.service"]);
      // Answered once the gateway runs: systemctl returns as soon as systemd has forked it (Type=simple).
      assert.equal((await get("status.gw.test", "/_conductor/status", "save")).status, 200);
      const gw = await gateway();
      assert.equal(gw.exe, node, "the launcher runs the gateway with the Node.js make install was given");
      assert.equal(gw.user, "conductor");
      assert.equal(gw.caps, "0000000000000000", "the gateway has no capability");
      t.diagnostic(`conductor-server runs on ${(await c.run([node, "--version"])).trim()}`);

      const web = conductor(t, ["-k", "web", "127.0.0.1", "/home/alice/web.sock", "--", "node", "/opt/check/web.cjs"]);
      const cache = conductor(t, ["--tcp", "--name", "cache", "127.0.0.1", "/home/alice/echo.sock", "--", "node", "/opt/check/echo.cjs"]);
      const webLive = await live(web);
      const host = (webLive.urls as string[])[0];
      assert.equal(host, DOMAIN.replace("{key}", "web").replace("{user}", "alice"), "the domain set with systemctl edit");
      const token = webLive.auth as string;
      const port = (await live(cache)).port;

      // A browser's first visit: the auth link sets the cookie, which opens the app.
      const link = await get(host, `/_conductor/auth/${token}?next=/`, "save");
      assert.equal(link.status, 302, link.head);
      assert.match(link.head, new RegExp(`^Set-Cookie: authorization=${token}; HttpOnly`, "mi"));
      const app = await get(host, "/", "send");
      assert.equal(app.status, 200, app.head);
      assert.match(app.body, /^hello from v/);
      await echoes(port, "first");

      await c.run(["systemctl", "reload", "conductor-server.service"]);
      assert.equal((await gateway()).pid, gw.pid, "reload keeps the process");
      assert.equal((await get(host, "/", "send")).status, 200, "served after reload");

      // Restart with both clients connected: the first request waits for the new gateway and finds the route.
      await c.run(["systemctl", "restart", "conductor-server.service"]);
      const afterRestart = await get(host, "/", "send");
      assert.equal(afterRestart.status, 200, `the first request after restart: ${afterRestart.head}`);
      assert.notEqual((await gateway()).pid, gw.pid);
      assert.equal((await live(cache, 2)).port, port, "the stream's port comes back");
      await echoes(port, "after restart");
      assert.equal((await live(web, 2)).auth, token, "the client takes its route back");

      // Stopped, with the socket unit holding the front socket: a browser's request starts the gateway, and is served.
      await c.run(["systemctl", "stop", "conductor-server.service"]);
      assert.equal((await c.exec(["systemctl", "is-active", "conductor-server.service"])).stdout.trim(), "inactive");
      assert.equal((await c.run(["systemctl", "is-active", "conductor-server.socket"])).trim(), "active");
      const waking = await get(host, "/", "send");
      assert.equal(waking.status, 200, `the request that woke the gateway: ${waking.head}`);
      assert.equal((await c.run(["systemctl", "is-active", "conductor-server.service"])).trim(), "active");
      assert.equal((await live(cache, 3)).port, port, "the stream's port comes back after the stop");
      await echoes(port, "after stop");

    });
  }

  it("a connection through a stream goes on across systemctl restart, a kill -9 of the gateway and systemctl stop; --stop-streams, as root, ends it", async (t) => {
    const held = conductor(t, ["--tcp", "--name", "held", "127.0.0.1", "/home/alice/held.sock", "--", "node", "/opt/check/echo.cjs"]);
    const port = (await live(held)).port;
    const connection = c.start([DEBIAN_NODE, "/opt/check/hold-client.cjs", String(port)]);
    t.after(async () => {
      c.kill(connection);
      await connection.exited;
    });
    await connection.waitForLine((l) => l === "connected");
    let pings = 0;
    /** A line sent through the held connection comes back on it. */
    const echoed = async (when: string): Promise<void> => {
      const line = `ping ${++pings}`;
      c.kill(connection, "SIGUSR2");
      assert.equal(await connection.waitForLine((l) => l === line || l === "closed"), line, `the connection ${when}`);
    };
    const nginxMaster = async (): Promise<string> => (await c.run(["cat", "/run/conductor/nginx/nginx.pid"])).trim();
    await echoed("before anything");
    const master = await nginxMaster();

    await c.run(["systemctl", "restart", "conductor-server.service"]);
    assert.equal((await get("status.gw.test", "/_conductor/status", "save")).status, 200);
    await echoed("after systemctl restart");

    // A crash: systemd starts the gateway again (Restart=on-failure) after RestartSec.
    const crashed = await service("MainPID", "NRestarts");
    await c.run(["kill", "-9", crashed.MainPID]);
    await until("a restart after the crash", async () => (await service("NRestarts")).NRestarts !== crashed.NRestarts || null);
    assert.equal((await get("status.gw.test", "/_conductor/status", "save")).status, 200, "the gateway is back");
    await echoed("after a kill -9 of the gateway");

    await c.run(["systemctl", "stop", "conductor-server.service"]);
    await echoed("after systemctl stop");
    assert.equal(await nginxMaster(), master, "one nginx all along, adopted at each start");

    const stop = await c.exec(["conductor-server", "-r", "/run/conductor", "--stop-streams"]);
    assert.equal(stop.status, 0, stop.stderr);
    assert.match(stop.stderr, /"the streams' nginx stopped"/);
    assert.doesNotMatch(stop.stderr, /adopted/, "--stop-streams does not say that the relays go on");
    assert.equal(await connection.waitForLine((l) => l === "closed"), "closed", "--stop-streams ends the connection");
    const left = await c.exec(["pgrep", "-a", "-u", "conductor", "-x", "nginx"]);
    assert.equal(left.stdout, "", "no nginx process of the gateway is left");
    await c.run(["systemctl", "start", "conductor-server.service"]);
  });

  it("a gateway that fails at each start is started again every 2 s, without end: the socket unit stays, and serves once the gateway is fixed", async (t) => {
    // A typo in the command line, as `systemctl edit` can leave it.
    const typo = "/etc/systemd/system/conductor-server.service.d/typo.conf";
    const fix = async (): Promise<void> => {
      rmSync(join(c.root, typo), { force: true });
      await c.run(["systemctl", "daemon-reload"]);
    };
    t.after(async () => {
      // Whatever happened, the next test finds the gateway running.
      await fix();
      await c.run(["systemctl", "start", "conductor-server.socket", "conductor-server.service"]);
    });
    writeFileSync(join(c.root, typo), "[Service]\nExecStart=\nExecStart=/usr/local/sbin/conductor-server --runtime-dir /run/conductor --domian x\n");
    await c.run(["systemctl", "daemon-reload"]);
    const before = Number((await service("NRestarts")).NRestarts);
    await c.run(["systemctl", "restart", "conductor-server.service"]);
    // More failed starts than systemd's default start limit allows (5 in 10 s), which would fail the socket unit as well.
    await until("six restarts", async () => {
      const now = await service("NRestarts", "Result", "ActiveState");
      assert.notEqual(now.ActiveState, "failed", `systemd gave up: ${now.Result}`);
      return Number(now.NRestarts) >= before + 6 || null;
    });
    assert.equal((await c.run(["systemctl", "is-active", "conductor-server.socket"])).trim(), "active");
    await fix();
    // The request waits in the socket's queue for the next start, which runs the fixed command line.
    assert.equal((await get("status.gw.test", "/_conductor/status", "save")).status, 200);
  });

  it("conductor-agent.service under alice's user manager locks when idle; conductor --agent unlocks it and connects with its key", async (t) => {
    await c.run(["loginctl", "enable-linger", "alice"]);
    await c.run(["systemctl", "start", `user@${uid}.service`]);
    const env = { XDG_RUNTIME_DIR: `/run/user/${uid}` };
    const agentSocket = `/run/user/${uid}/conductor/agent.sock`;
    const asAlice = (command: string[], extra: Record<string, string> = {}) => c.run(command, { user: "alice", env: { ...env, ...extra } });
    // The unit as installed, with a short idle time set the way the unit's comment says.
    await asAlice(["mkdir", "-p", "/home/alice/.config/systemd/user/conductor-agent.service.d"]);
    writeFileSync(join(c.root, "home/alice/.config/systemd/user/conductor-agent.service.d/override.conf"),
      "[Service]\nExecStart=\nExecStart=/usr/local/bin/conductor-agent start --foreground --socket %t/conductor/agent.sock --idle 2s\n");
    await asAlice(["systemctl", "--user", "daemon-reload"]);
    await asAlice(["systemctl", "--user", "enable", "--now", "conductor-agent.service"]);
    const status = async (): Promise<Record<string, unknown> | null> => {
      const ran = await c.exec(["conductor-agent", "status", "--json", "--socket", agentSocket], { user: "alice", env });
      return ran.status === 0 ? JSON.parse(ran.stdout) : null;
    };
    let last: Record<string, unknown> | null = null;
    const waitFor = (what: string, check: (s: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> =>
      until(() => `the agent never was ${what}: ${JSON.stringify(last)}`, async () => {
        last = await status();
        return last !== null && check(last) ? last : null;
      });
    await waitFor("up", () => true);
    await asAlice(["ssh-add", "/home/alice/.ssh/id_ed25519"], { SSH_AUTH_SOCK: agentSocket });
    assert.equal((await status())?.locked, false);
    await waitFor("locked", (s) => s.locked === true);
    const listed = await c.exec(["ssh-add", "-l"], { user: "alice", env: { SSH_AUTH_SOCK: agentSocket } });
    assert.equal(listed.status, 1, `a locked agent lists no keys: ${listed.stdout}`);
    // Only the agent holds the key now.
    await asAlice(["mv", "/home/alice/.ssh/id_ed25519", "/home/alice/.ssh/id_ed25519.away"]);

    const run = conductor(t, ["--agent", agentSocket, "-k", "agent", "127.0.0.1", "/home/alice/agent.sock", "--", "node", "/opt/check/web.cjs"]);
    assert.equal((await live(run)).key, "agent");
    const after = await status();
    assert.equal(after?.locked, false, `conductor unlocked the agent: ${JSON.stringify(after)}`);
    assert.match(String(after?.keys), /alice \(ED25519\)/);
    await asAlice(["mv", "/home/alice/.ssh/id_ed25519.away", "/home/alice/.ssh/id_ed25519"]);
  });

  it("--nginx-mode site: Debian's nginx, as nginx.service, set up and reloaded once, relays a stream that registrations publish, remove and publish again without a reload; the gateway runs no nginx", async (t) => {
    // The admin's setup, as conductor-server(8) says ("The site's nginx"). The gateway's own nginx of the earlier tests
    // holds the ports: the gateway stops, --stop-streams ends that nginx, and the gateway starts in site mode.
    writeFileSync(join(c.root, OVERRIDE), execStart("--nginx-mode", "site", "--stream-dir", STREAM_DIR));
    await c.run(["systemctl", "daemon-reload"]);
    await c.run(["systemctl", "stop", "conductor-server.service"]);
    await c.run(["conductor-server", "-r", "/run/conductor", "--stop-streams"]);
    await c.run(["systemctl", "start", "conductor-server.service"]);
    // The gateway answers once it has written the blocks.
    assert.equal((await get("status.gw.test", "/_conductor/status", "save")).status, 200);
    assert.match(await c.run(["ls", STREAM_DIR]), /^_conductor_9000\.conf$.*^_conductor_zones\.conf$/ms);
    const before = await siteNginx();
    assert.deepEqual(before.strays, [], "every nginx is nginx.service's: the gateway started none of its own");
    await c.run(["cp", `${CONTRIB}/nginx-conductor-streams.conf`, "/etc/nginx/conductor-streams.conf"]);
    await c.run(["sh", "-c", "echo 'include /etc/nginx/conductor-streams.conf;' >> /etc/nginx/nginx.conf"]);
    await c.run(["usermod", "-a", "-G", "conductor", "www-data"]);
    await c.run(["nginx", "-t", "-q"]);
    await c.run(["systemctl", "reload", "nginx.service"]);
    // systemctl returns once nginx's master has the signal: its new workers start after it has bound the new ports.
    let log = "";
    const workers = await until(() => `nginx started no new workers after the reload: ${log}`, async () => {
      const now = await siteNginx();
      if (now.workers.length > 0 && now.workers.every((pid) => !before.workers.includes(pid))) return now.workers;
      log = await c.run(["tail", "-n", "5", "/var/log/nginx/error.log"]);
      return null;
    });

    const publish = async (): Promise<{ client: TestProcess; port: unknown }> => {
      const client = conductor(t, ["--tcp", "--name", "site", "127.0.0.1", "/home/alice/site.sock", "--", "node", "/opt/check/echo.cjs"]);
      return { client, port: (await live(client)).port };
    };
    const first = await publish();
    await echoes(first.port, "through Debian's nginx");

    c.kill(first.client);
    await first.client.exited;
    const link = `/run/conductor/streams/${first.port}.sock`;
    await until("the stream's link removed", async () => (await c.exec(["test", "-L", link])).status !== 0 || null);
    const refused = await c.exec([DEBIAN_NODE, "/opt/check/echo-client.cjs", String(first.port), "gone"]);
    assert.equal(refused.stdout, "", "a connection to the port of a removed stream gets nothing back");

    const again = await publish();
    assert.equal(again.port, first.port, "the stream gets its port back");
    await echoes(again.port, "published again");

    const after = await siteNginx();
    assert.equal(after.master, before.master, "nginx.service's master process all along");
    assert.deepEqual(after.workers, workers, "the same workers: no reload since the setup");
    assert.deepEqual(after.strays, [], "still no nginx but nginx.service's");
  });
});
