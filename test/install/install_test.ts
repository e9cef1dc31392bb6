/**
 * The release tarball and its Makefile, as a sysadmin uses them: `make dist`
 * is reproducible, `make install` from the unpacked tarball needs nothing but
 * node, ssh and the usual tools (no npm, npx or tsc), the installed programs
 * publish a route end to end, `make uninstall` removes every file, and the
 * systemd units verify clean with a low exposure score. The tarball's demo
 * runs as a self-test with node and sshd only, and a gateway set up without
 * systemd as the README says passes `conductor check`.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { VERSION } from "../../src/lib/version.ts";
import { account } from "../helpers/accounts.ts";
import type { Cleanup } from "../helpers/cleanup.ts";
import { startConductor, userDir } from "../helpers/conductor.ts";
import { needsRoot, repoRoot } from "../helpers/env.ts";
import { startProcess } from "../helpers/process.ts";
import { startGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { buildTarball, openDir, run } from "../helpers/release.ts";
import { sshdMissing, startSshd } from "../helpers/sshd.ts";

/** What a sysadmin's machine has: the tools the Makefile and the programs use. */
const TOOLS = ["make", "sh", "sed", "head", "install", "cp", "chmod", "mkdir", "rm", "realpath", "env", "ssh", "ssh-keygen", "getent"];
const missingTools = TOOLS.filter((name) => which(name) === null);
const skip = missingTools.length > 0 ? `missing ${missingTools.join(", ")} (apt-get install make openssh-client)` : false;
const systemdMissing = which("systemd-analyze") === null ? "systemd-analyze is not installed (apt-get install systemd)" : false;

/** The first `name` on the PATH, or null. */
function which(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir !== "" && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** A directory holding node, ssh and the usual tools, and nothing of npm: the PATH of a locked-down cluster. */
function sysadminPath(t: Cleanup): string {
  const dir = openDir(t, "conductor-path-");
  symlinkSync(process.execPath, join(dir, "node"));
  for (const name of TOOLS) symlinkSync(which(name)!, join(dir, name));
  return dir;
}

/** Every file (not directory) under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  // Node before 18.20 (and 20.12) names an entry's directory `path`, later ones `parentPath`.
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as Array<{ isDirectory(): boolean; parentPath?: string; path: string; name: string }>)
    .filter((e) => !e.isDirectory())
    .map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1))
    .sort();
}

test("make dist builds the same bytes from one source, with the compiled JavaScript and no TypeScript or node_modules", { skip }, (t) => {
  const first = buildTarball(t);
  // Another copy whose files carry other times: the tarball must not show it.
  const second = buildTarball(t, new Date("2020-02-02T02:02:02Z"));
  assert.ok(readFileSync(first).equals(readFileSync(second)), "two builds are byte-identical");
  const entries = run("tar", ["-tzf", first]).trim().split("\n");
  const top = `conductor-${VERSION}/`;
  assert.ok(entries.every((e) => e.startsWith(top)), "everything is under one directory");
  for (const wanted of ["Makefile", "README.md", "LICENSE", "make/launcher.in", "lib/conductor/package.json", "lib/conductor/bin/conductor.js", "lib/conductor/demo/main.js",
    "lib/conductor/bin/conductor-server.js", "man/conductor.1", "man/conductor.7", "man/conductor-server.8",
    "contrib/systemd/conductor-server.service", "contrib/systemd/conductor-server.socket"]) {
    assert.ok(entries.includes(top + wanted), `the tarball holds ${wanted}`);
  }
  assert.deepEqual(entries.filter((e) => e.endsWith(".ts") || e.includes("node_modules") || e.includes("/test/")), [], "nothing of the sources, tests or dependencies");
  const listing = run("tar", ["-tvzf", first]);
  assert.ok(!/ [1-9][0-9]*\/| root\//.test(listing) && listing.split("\n").filter(Boolean).every((l) => l.includes(" 0/0 ")), "owner and group are 0/0");
});

/** The unpacked release tarball, and the environment of a sysadmin's shell: node, ssh and the usual tools, no npm, npx or tsc. */
function unpackedRelease(t: Cleanup): { release: string; env: NodeJS.ProcessEnv } {
  const unpacked = openDir(t, "conductor-unpacked-");
  run("tar", ["-xzf", buildTarball(t), "-C", unpacked]);
  const env = { PATH: sysadminPath(t), HOME: "/root" };
  const found = spawnSync("sh", ["-c", "command -v npm || command -v npx || command -v tsc"], { env, encoding: "utf8" });
  assert.ok(found.status !== 0 && found.stdout === "", `no npm, npx or tsc on this PATH: ${found.stdout}`);
  return { release: join(unpacked, `conductor-${VERSION}`), env };
}

test("the tarball installs with make install and node, ssh and coreutils only; the programs run, publish a route, and make uninstall removes every file", { skip: skip || sshdMissing, timeout: 300_000 }, async (t) => {
  const { release, env } = unpackedRelease(t);
  const root = openDir(t, "conductor-destdir-");
  run("make", ["install", `DESTDIR=${root}`, "PREFIX=/usr"], { cwd: release, env });
  const installed = filesUnder(root);
  for (const wanted of ["usr/bin/conductor", "usr/bin/conductor-agent", "usr/sbin/conductor-server", "usr/lib/conductor/bin/conductor.js", "usr/lib/conductor/package.json",
    "usr/share/man/man1/conductor.1", "usr/share/man/man1/conductor-agent.1", "usr/share/man/man7/conductor.7", "usr/share/man/man8/conductor-server.8",
    "usr/share/doc/conductor/README.md", "usr/share/doc/conductor/contrib/nginx-conductor.conf"]) {
    assert.ok(installed.includes(wanted), `installed ${wanted}: ${installed.join(" ")}`);
  }
  assert.deepEqual(installed.filter((f) => f.startsWith("usr/lib/systemd")), [], "units only with install-systemd");
  assert.match(readFileSync(join(root, "usr/bin/conductor"), "utf8"), /^#!\/usr\/bin\/env node\n/);

  const conductor = join(root, "usr/bin/conductor");
  const server = join(root, "usr/sbin/conductor-server");
  assert.equal(run(conductor, ["--version"], { env }), `conductor ${VERSION}\n`);
  assert.match(run(server, ["--help"], { env }), /^Usage: conductor-server \[options\]/);
  assert.equal(run(join(root, "usr/bin/conductor-agent"), ["--version"], { env }), `conductor-agent ${VERSION}\n`);
  for (const page of installed.filter((f) => f.startsWith("usr/share/man/"))) {
    const shown = spawnSync("man", ["--warnings", "-l", join(root, page)], { env: { ...process.env, MANPAGER: "cat", MANWIDTH: "80" }, encoding: "utf8" });
    assert.equal(shown.status, 0, `man -l ${page}`);
    assert.equal(shown.stderr, "", `man -l ${page} shows no warnings`);
  }

  // The whole chain from the installed files, with that PATH.
  const sshd = await startSshd(t);
  const gw = await startGateway(t, { program: server, env });
  const client = startConductor(t, sshd, gw, { program: conductor, env, key: "installed", token: "installed-token-0123" });
  const live = await client.live();
  const hello = await request({ port: gw.port, host: live.urls[0], path: "/hello", headers: { Cookie: "authorization=installed-token-0123" } });
  assert.equal(hello.text, "hello\n");
  await client.process.stop();
  await gw.stop();
  // The installed demo, as the README gives it: the whole chain again, with node and sshd only.
  const demo = spawnSync(process.execPath, [join(root, "usr/lib/conductor/demo/main.js"), "--once"], { env, encoding: "utf8" });
  assert.equal(demo.status, 0, demo.stdout + demo.stderr);
  assert.match(demo.stdout, /through the gateway with the cookie: {4}200 It works\./);

  run("make", ["install-systemd", `DESTDIR=${root}`, "PREFIX=/usr"], { cwd: release, env });
  assert.match(readFileSync(join(root, "usr/lib/systemd/system/conductor-server.service"), "utf8"), /^ExecStart=\/usr\/sbin\/conductor-server /m);
  assert.match(readFileSync(join(root, "usr/lib/systemd/user/conductor-agent.service"), "utf8"), /^ExecStart=\/usr\/bin\/conductor-agent start --foreground /m);
  run("make", ["uninstall", `DESTDIR=${root}`, "PREFIX=/usr"], { cwd: release, env });
  assert.deepEqual(filesUnder(root), [], "make uninstall leaves no file");
});

test("make install NODE=... writes that interpreter into the launchers, which refuse a Node.js older than package.json's engines and say what to do", { skip }, (t) => {
  const floor = /^>=([0-9]+)\.([0-9]+)$/.exec(JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).engines.node);
  assert.ok(floor, "package.json's engines.node is >=MAJOR.MINOR");
  const unpacked = openDir(t, "conductor-unpacked-");
  run("tar", ["-xzf", buildTarball(t), "-C", unpacked]);
  const prefix = join(openDir(t, "conductor-prefix-"), "usr");
  run("make", ["install", `PREFIX=${prefix}`, `NODE=${process.execPath}`], { cwd: join(unpacked, `conductor-${VERSION}`) });
  const launcher = join(prefix, "bin", "conductor");
  assert.equal(readFileSync(launcher, "utf8").split("\n")[0], `#!${process.execPath}`);
  assert.equal(run(launcher, ["--version"]), `conductor ${VERSION}\n`);
  // This node, told before the launcher runs that it is another version.
  const pretend = (version: string): ReturnType<typeof spawnSync> => {
    const script = join(openDir(t, "conductor-pretend-"), "pretend.cjs");
    writeFileSync(script, `Object.defineProperty(process.versions, "node", { value: "${version}" });\nObject.defineProperty(process, "version", { value: "v${version}" });\n`);
    return spawnSync(process.execPath, ["--require", script, launcher, "--version"], { encoding: "utf8" });
  };
  const [major, minor] = [Number(floor[1]), Number(floor[2])];
  const oldest = pretend(`${major}.${minor}.0`);
  assert.equal(oldest.status, 0, `the oldest Node.js it supports runs it: ${oldest.stderr}`);
  for (const version of [...(minor > 0 ? [`${major}.${minor - 1}.9`] : []), `${major - 1}.99.0`]) {
    const refused = pretend(version);
    assert.equal(refused.status, 1, version);
    assert.equal(refused.stdout, "");
    assert.equal(refused.stderr, `conductor: needs Node.js ${major}.${minor} or later, but ${process.execPath} is v${version}.\n` +
      "Put a newer node first on PATH, or reinstall with: make install NODE=/path/to/bin/node\n");
  }
});

test("the systemd units verify clean and the service's exposure is at most 2.0", { skip: skip || systemdMissing }, (t) => {
  const unpacked = openDir(t, "conductor-unpacked-");
  run("tar", ["-xzf", buildTarball(t), "-C", unpacked]);
  const prefix = join(openDir(t, "conductor-prefix-"), "usr");
  run("make", ["install", "install-systemd", `PREFIX=${prefix}`], { cwd: join(unpacked, `conductor-${VERSION}`) });
  const units = join(prefix, "lib", "systemd", "system");
  const service = join(units, "conductor-server.service");
  assert.match(readFileSync(service, "utf8"), new RegExp(`^ExecStart=${prefix}/sbin/conductor-server `, "m"), "ExecStart names the installed program");
  const verify = spawnSync("systemd-analyze", ["verify", "--man=no", service, join(units, "conductor-server.socket")], { encoding: "utf8" });
  assert.equal(verify.status, 0, verify.stderr);
  assert.equal(verify.stdout + verify.stderr, "", "systemd-analyze verify finds nothing");
  const security = spawnSync("systemd-analyze", ["security", "--offline=true", service], { encoding: "utf8" });
  const score = /Overall exposure level for conductor-server\.service: ([0-9.]+)/.exec(security.stdout);
  assert.ok(score, security.stdout + security.stderr);
  t.diagnostic(`systemd-analyze security: exposure ${score[1]}`);
  assert.ok(Number(score[1]) <= 2.0, `exposure ${score[1]} is at most 2.0:\n${security.stdout.split("\n").filter((l) => l.includes("✗")).join("\n")}`);
});

test("the tarball tries the whole chain with node and sshd only: make check in the unpacked tarball passes, and the README says so", { skip: skip || sshdMissing, timeout: 300_000 }, (t) => {
  const { release, env } = unpackedRelease(t);
  const readme = readFileSync(join(release, "README.md"), "utf8");
  assert.match(readme, /^npm ci && npm run demo$/m, "the README gives the checkout's command");
  assert.match(readme, /^make demo {2,}# or: node lib\/conductor\/demo\/main\.js$/m, "and the tarball's");
  const check = spawnSync("make", ["check"], { cwd: release, env, encoding: "utf8" });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /through the gateway with the cookie: {4}200 It works\.\n {3}through the gateway without the cookie: 403 /);
  assert.match(check.stdout, /The chain works\.\n\nStopping: .*\nDone; nothing is left running\.\n$/);
});

test("a gateway set up without systemd as the README says passes conductor check; a front socket it cannot create names the directory to make", { skip: skip || sshdMissing || needsRoot, timeout: 300_000 }, async (t) => {
  const { release, env } = unpackedRelease(t);
  const root = openDir(t, "conductor-destdir-");
  run("make", ["install", `DESTDIR=${root}`, "PREFIX=/usr"], { cwd: release, env });
  // The README's steps, with the system's directories moved into a scratch one.
  const steps = /^#### Without systemd\n[\s\S]*?```sh\n([\s\S]*?)```/m.exec(readFileSync(join(release, "README.md"), "utf8"))![1].replace(/\\\n\s*/g, "");
  const base = openDir(t, "conductor-nosystemd-");
  const moved = (line: string): string => line.replaceAll("/var/lib/conductor", `${base}/lib/conductor`).replaceAll("/var/run/conductor", `${base}/run/conductor`);
  for (const line of steps.split("\n").filter((l) => l.startsWith("install -d "))) run("sh", ["-c", moved(line)], { env });
  const runtime = `${base}/run/conductor`;
  assert.equal(statSync(runtime).mode & 0o7777, 0o755);
  assert.equal(statSync(`${base}/lib/conductor`).mode & 0o7777, 0o700);
  assert.equal(statSync(runtime).uid, account("conductor").uid);
  const start = /^runuser -u conductor -- (conductor-server .*)$/m.exec(steps)![1];
  // /usr/bin last, for setpriv, which starts it as conductor.
  const gatewayEnv = { PATH: `${root}/usr/sbin:${env.PATH}:/usr/bin` };
  const gateway = startProcess(t, "sh", ["-c", `exec ${moved(start)}`], { user: "conductor", groups: ["www-data"], env: gatewayEnv });
  await gateway.waitForJson((l) => l.msg === "gateway listening", 60_000, "stderr");
  assert.deepEqual(gateway.json("stderr").filter((l) => String(l.msg).startsWith("Users cannot reach")), [], "no warning: users can reach the control socket");
  const front = statSync(join(runtime, "http.sock"));
  assert.deepEqual([front.isSocket(), front.mode & 0o777, front.gid], [true, 0o660, account("www-data").gid], "the front socket is nginx's group's");

  const sshd = await startSshd(t);
  const options = sshd.clientOptions("alice").flatMap((o) => ["-o", o]);
  const check = startProcess(t, join(root, "usr/bin/conductor"), ["check", ...options, `${sshd.loginName("alice")}@127.0.0.1:${sshd.port}${runtime}/client`],
    { user: "alice", env: { ...env, XDG_STATE_HOME: join(userDir(t, "alice"), "state") } });
  assert.equal((await check.exited).code, 0, check.stdout.join("\n") + check.stderr.join("\n"));
  await check.closed;
  assert.ok(check.stdout.includes(`control socket  ${runtime}/client answered`), check.stdout.join("\n"));
  assert.equal(check.stdout.at(-1), "ok              runs can publish on 127.0.0.1");
  await gateway.stop();
  // The streams' nginx outlives the gateway on purpose; this is how the admin ends it.
  const stopStreams = startProcess(t, join(root, "usr/sbin/conductor-server"), ["--runtime-dir", runtime, "--stop-streams"], { user: "conductor", env: gatewayEnv });
  assert.equal((await stopStreams.exited).code, 0, stopStreams.stderr.join("\n"));

  // The systemd socket's path, without systemd: a directory the gateway's user may not write.
  const rootOnly = openDir(t, "conductor-run-");
  const refused = startProcess(t, "sh", ["-c", "exec " + moved(start).replace(`--sock ${runtime}/http.sock`, `--sock ${rootOnly}/conductor-http.sock`)], { user: "conductor", groups: ["www-data"], env: gatewayEnv });
  assert.equal((await refused.exited).code, 1);
  await refused.closed;
  assert.match(refused.stderr.join("\n"), new RegExp(`Cannot listen on --sock ${rootOnly}/conductor-http\\.sock: listen EACCES: permission denied ${rootOnly}/conductor-http\\.sock; ` +
    `the gateway's user conductor may not create files in ${rootOnly}: create a directory it owns for the socket \\(install -d -m 0755 -o conductor ${rootOnly}/conductor, ` +
    `then --sock ${rootOnly}/conductor/http\\.sock\\), or put the socket in its runtime directory \\(--sock ${runtime}/http\\.sock\\)`));
});

test("the checkout's demo runs unbuilt through tsx (npm run demo), and every install script of the dev dependencies is decided in allowScripts", { skip: sshdMissing, timeout: 300_000 }, () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { scripts: Record<string, string>; allowScripts?: Record<string, boolean> };
  const lock = JSON.parse(readFileSync(join(repoRoot, "package-lock.json"), "utf8")) as { packages: Record<string, { hasInstallScript?: boolean }> };
  const scripted = Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript).map(([path]) => path.replace(/^.*node_modules\//, ""));
  assert.deepEqual(scripted.filter((name) => pkg.allowScripts?.[name] === undefined), [], "npm ci has no install script to warn about");
  assert.equal(pkg.scripts.demo, "tsx src/demo/main.ts");
  const demo = spawnSync(join(repoRoot, "node_modules", ".bin", "tsx"), ["src/demo/main.ts", "--once"], { cwd: repoRoot, encoding: "utf8" });
  assert.equal(demo.status, 0, demo.stdout + demo.stderr);
  assert.match(demo.stdout, /The chain works\./);
});
