/**
 * conductor under a real systemd (252, Debian 12 booted with systemd-nspawn),
 * installed from the release tarball as the README says (make install,
 * make install-systemd, the units enabled): alice publishes a web app and a
 * TCP stream over ssh to 127.0.0.1; the app answers through the socket unit
 * with the auth link and its cookie; the gateway keeps its routes across
 * systemctl reload, restart and stop (the request that wakes it included).
 * Once with the suite's own Node.js copied in, once with Debian's. Then
 * conductor-agent.service under alice's user manager locks when idle, and
 * conductor --agent unlocks it and connects with its key alone.
 *
 * Needs root, systemd-nspawn and mmdebstrap (.ci/run installs them); under CI
 * it fails rather than skips.
 */
import assert from "node:assert/strict";
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
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
    await c.run(["cp", "/usr/local/share/doc/conductor/contrib/sshd_config.conductor", "/etc/ssh/sshd_config.d/conductor.conf"]);
    await c.run(["systemctl", "restart", "ssh"]);
    await c.run(["mkdir", "-p", OVERRIDE.slice(0, OVERRIDE.lastIndexOf("/"))]);
    writeFileSync(join(c.root, OVERRIDE), "[Service]\nExecStart=\nExecStart=/usr/local/sbin/conductor-server --runtime-dir /run/conductor " +
      `--state-dir /var/lib/conductor --trust-forwarded --domain '${DOMAIN}'\n`);
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

  for (const [label, node] of [["the suite's own Node.js", HOST_NODE], ["Debian's own Node.js", DEBIAN_NODE]]) {
    it(`with ${label}: an app through the socket unit and a stream, across systemctl reload, restart and stop`, async (t) => {
      await c.run(["make", "-C", `/root/conductor-${VERSION}`, "install", `NODE=${node}`]);
      // The rounds start the gateway more often than systemd's start limit allows (5 starts in 10 s): count afresh.
      await c.run(["systemctl", "reset-failed", "conductor-server.service", "conductor-server.socket"]);
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
    const waitFor = async (what: string, check: (s: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const s = await status();
        if (s !== null && check(s)) return s;
        assert.ok(Date.now() < deadline, `the agent never was ${what}: ${JSON.stringify(s)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
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
});
