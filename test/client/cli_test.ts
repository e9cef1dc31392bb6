import assert from "node:assert/strict";
import { test } from "node:test";
import { parseClientArgs } from "../../src/client/cli.ts";

test("parseClientArgs() takes the original's command line", () => {
  const c = parseClientArgs(["-k", "Lab", "-r", "me@gw:2222/run/client", "app.sock", "--", "jupyter", "lab", "--sock", "x"], "/home/me");
  assert.equal(c.kind, "run");
  if (c.kind !== "run") return;
  assert.equal(c.options.key, "lab");
  assert.equal(c.options.replace, true);
  assert.equal(c.options.appSocket, "/home/me/app.sock");
  assert.deepEqual(c.options.command, ["jupyter", "lab", "--sock", "x"]);
  assert.deepEqual(c.options.destination, { user: "me", host: "gw", port: 2222, controlPath: "/run/client" });
});

test("parseClientArgs() starts the command at the third operand when there is no '--'", () => {
  const c = parseClientArgs(["gw", "/s.sock", "python3", "-m", "http.server", "-v"]);
  assert.equal(c.kind, "run");
  if (c.kind === "run") {
    assert.deepEqual(c.options.command, ["python3", "-m", "http.server", "-v"]);
    assert.equal(c.options.verbose, false, "the command's -v is not conductor's");
  }
});

test("parseClientArgs() passes -o options to ssh and refuses malformed ones", () => {
  const c = parseClientArgs(["-o", "Port=2222", "-o", "IdentityFile=/k", "gw", "/s", "--", "x"]);
  assert.equal(c.kind === "run" && c.options.sshOptions.join(","), "Port=2222,IdentityFile=/k");
  assert.throws(() => parseClientArgs(["-o", "ProxyCommand", "gw", "/s", "--", "x"]), /-o takes an ssh option as Name=value/);
});

test("parseClientArgs() explains what is missing or wrong", () => {
  assert.throws(() => parseClientArgs(["gw"]), /a gateway and an app socket are needed/);
  assert.throws(() => parseClientArgs(["gw", "/s"]), /no command to run/);
  assert.throws(() => parseClientArgs(["-k", "a_b", "gw", "/s", "--", "x"]), /Cannot use key/);
  assert.throws(() => parseClientArgs(["gw", "/a:b", "--", "x"]), /contains ':'/);
  assert.throws(() => parseClientArgs(["gw", "/" + "x".repeat(120), "--", "x"]), /longer than the 107 bytes/);
  assert.throws(() => parseClientArgs(["--bogus", "gw", "/s", "--", "x"]), /Unknown option '--bogus'\nTry 'conductor --help'/);
  assert.throws(() => parseClientArgs(["gw", "/s", "-k", "lab", "--", "x"]), /'-k' comes after the gateway and the app socket.*options go before the gateway/);
  assert.throws(() => parseClientArgs(["gw", "/s", "--", ""]), /the command to run is empty/);
  assert.throws(() => parseClientArgs(["frob", "x"]), /for a verb, use one of check, show, verify, list, stop, tunnel/);
});

test("parseClientArgs() reads bundled short options, a value last (-vk lab)", () => {
  const c = parseClientArgs(["-vk", "lab", "gw", "/s", "--", "x"]);
  assert.ok(c.kind === "run");
  assert.equal(c.options.key, "lab");
  assert.equal(c.options.verbose, true);
  assert.deepEqual(c.options.command, ["x"]);
  const attached = parseClientArgs(["-klab", "gw", "/s", "x", "-k"]);
  assert.ok(attached.kind === "run");
  assert.deepEqual(attached.options.command, ["x", "-k"], "a command without '--' may take options of its own after its first word");
});

test("the verbs take --help, and list matches names whatever their case", () => {
  assert.deepEqual(parseClientArgs(["show", "--help"]), { kind: "help" });
  const list = parseClientArgs(["list", "LAB*"]);
  assert.ok(list.kind === "list");
  assert.equal(list.pattern, "lab*");
});

test("parseClientArgs() reads --idle-timeout and --start-timeout as sshd_config durations, with defaults", () => {
  const c = parseClientArgs(["--idle-timeout", "1h30m", "--start-timeout", "90", "gw", "/s", "--", "x"]);
  assert.ok(c.kind === "run");
  assert.equal(c.options.idleTimeoutMs, 5_400_000);
  assert.equal(c.options.startTimeoutMs, 90_000);
  const plain = parseClientArgs(["gw", "/s", "--", "x"]);
  assert.ok(plain.kind === "run");
  assert.equal(plain.options.idleTimeoutMs, null, "no idle timeout unless asked");
  assert.equal(plain.options.startTimeoutMs, 600_000, "ten minutes to start");
  assert.throws(() => parseClientArgs(["--idle-timeout", "soon", "gw", "/s", "--", "x"]), /--idle-timeout takes a duration above zero, as in sshd_config/);
  assert.throws(() => parseClientArgs(["--start-timeout", "0", "gw", "/s", "--", "x"]), /--start-timeout takes a duration above zero/);
});

test("parseClientArgs() reads conductor tunnel: a host without a path, then LOCAL:REMOTE forwards of ports and socket paths", () => {
  const c = parseClientArgs(["tunnel", "-o", "Port=2222", "me@gw", "8888:/run/lab.sock", "db.sock:5432"], "/home/me");
  assert.ok(c.kind === "tunnel");
  assert.equal(c.ssh.destination.host, "gw");
  assert.deepEqual(c.ssh.sshOptions, ["Port=2222"]);
  assert.deepEqual(c.forwards, [{ local: "127.0.0.1:8888", remote: "/run/lab.sock" }, { local: "/home/me/db.sock", remote: "localhost:5432" }]);
  assert.throws(() => parseClientArgs(["tunnel", "gw"]), /conductor tunnel takes a host and at least one LOCAL:REMOTE forward/);
  assert.throws(() => parseClientArgs(["tunnel", "gw/run/x", "1:2"]), /conductor tunnel takes a host without a path/);
  assert.throws(() => parseClientArgs(["tunnel", "gw", "1:2:3"]), /Cannot read forward '1:2:3'/);
  assert.throws(() => parseClientArgs(["tunnel", "gw", "70000:22"]), /port 70000 is not from 1 to 65535/);
  assert.throws(() => parseClientArgs(["show", "-o", "Port=2", "x"]), /-o goes with a run, conductor check, conductor list --gateway and conductor tunnel/);
});

test("parseClientArgs() takes --agent for a run, a tunnel and list --gateway, as an absolute path", () => {
  const tunnel = parseClientArgs(["tunnel", "--agent", "agent.sock", "gw", "1:2"], "/home/me");
  assert.ok(tunnel.kind === "tunnel");
  assert.equal(tunnel.ssh.agent, "/home/me/agent.sock");
  const list = parseClientArgs(["list", "--gateway", "gw", "--agent", "/run/a.sock"]);
  assert.ok(list.kind === "list");
  assert.equal(list.gateway?.agent, "/run/a.sock");
  assert.throws(() => parseClientArgs(["list", "--agent", "/run/a.sock"]), /--agent goes with a run, conductor check, conductor list --gateway and conductor tunnel/);
  assert.throws(() => parseClientArgs(["show", "--agent", "/run/a.sock", "x"]), /--agent goes with/);
  assert.throws(() => parseClientArgs(["--agent", '/tmp/a"b', "gw", "a.sock", "--", "x"]), /Cannot use the agent socket .*a quote/);
});

test("parseClientArgs() reads --tcp and --port, and refuses what does not fit a TCP service", () => {
  const run = parseClientArgs(["--tcp", "--port", "9003", "-n", "db", "gw", "db.sock", "--", "redis-server"], "/home/me");
  assert.ok(run.kind === "run");
  assert.deepEqual([run.options.tcp, run.options.port, run.options.name], [true, 9003, "db"]);
  assert.throws(() => parseClientArgs(["--port", "9003", "gw", "a.sock", "--", "x"]), /--port goes with --tcp/);
  assert.throws(() => parseClientArgs(["--tcp", "--port", "90x", "gw", "a.sock", "--", "x"]), /--port takes a port number/);
  assert.throws(() => parseClientArgs(["--tcp", "--idle-timeout", "5m", "gw", "a.sock", "--", "x"]), /--idle-timeout counts browsers' use of a web app/);
  assert.throws(() => parseClientArgs(["--tcp", "-n", "a".repeat(33), "gw", "a.sock", "--", "x"]), /a --tcp service name has 1 to 32/);
});

test("parseClientArgs() reads conductor check: a gateway with its path, and the options of the SSH connection", () => {
  const c = parseClientArgs(["check", "-v", "-o", "Port=2222", "--connect-timeout", "5s", "me@gw/run/conductor/client"]);
  assert.ok(c.kind === "check");
  assert.deepEqual(c.ssh.destination, { user: "me", host: "gw", port: null, controlPath: "/run/conductor/client" });
  assert.deepEqual([c.ssh.sshOptions, c.ssh.connectTimeout, c.verbose], [["Port=2222"], 5, true]);
  assert.throws(() => parseClientArgs(["check"]), /conductor check takes a gateway/);
  assert.throws(() => parseClientArgs(["check", "--json", "gw"]), /--json goes with conductor show and conductor list/);
});

test("parseClientArgs() gives ssh a ConnectTimeout of 30 s unless --connect-timeout says otherwise", () => {
  const run = parseClientArgs(["gw", "/s", "--", "x"]);
  assert.ok(run.kind === "run");
  assert.equal(run.options.connectTimeout, 30);
  const tunnel = parseClientArgs(["tunnel", "--connect-timeout", "1m", "gw", "1:2"]);
  assert.ok(tunnel.kind === "tunnel");
  assert.equal(tunnel.ssh.connectTimeout, 60);
  assert.throws(() => parseClientArgs(["--connect-timeout", "0", "gw", "/s", "--", "x"]), /--connect-timeout takes a duration above zero/);
  assert.throws(() => parseClientArgs(["list", "--connect-timeout", "5"]), /--connect-timeout goes with .*conductor list --gateway/);
});

test("parseClientArgs() finds the verb after any option that takes a value, --gateway included", () => {
  const list = parseClientArgs(["--gateway", "gw", "list"]);
  assert.ok(list.kind === "list");
  assert.equal(list.gateway?.destination.host, "gw");
  assert.throws(() => parseClientArgs(["--tls", "list"]), /--tls goes with a run\nTry 'conductor --help'/);
});
