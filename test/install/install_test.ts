/**
 * The release tarball and its Makefile, as a sysadmin uses them: `make dist`
 * is reproducible, `make install` from the unpacked tarball needs nothing but
 * node, ssh and the usual tools (no npm, npx or tsc), the installed programs
 * publish a route end to end, `make uninstall` removes every file, and the
 * systemd units verify clean with a low exposure score.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { VERSION } from "../../src/lib/version.ts";
import type { Cleanup } from "../helpers/cleanup.ts";
import { startConductor } from "../helpers/conductor.ts";
import { repoRoot } from "../helpers/env.ts";
import { startGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { buildTarball, openDir, run } from "../helpers/release.ts";
import { sshdMissing, startSshd } from "../helpers/sshd.ts";

/** What a sysadmin's machine has: the tools the Makefile and the programs use. */
const TOOLS = ["make", "sh", "sed", "head", "install", "cp", "chmod", "mkdir", "rm", "realpath", "env", "ssh", "getent"];
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
  for (const wanted of ["Makefile", "README.md", "LICENSE", "make/launcher.in", "lib/conductor/package.json", "lib/conductor/bin/conductor.js",
    "lib/conductor/bin/conductor-server.js", "man/conductor.1", "man/conductor.7", "man/conductor-server.8",
    "contrib/systemd/conductor-server.service", "contrib/systemd/conductor-server.socket"]) {
    assert.ok(entries.includes(top + wanted), `the tarball holds ${wanted}`);
  }
  assert.deepEqual(entries.filter((e) => e.endsWith(".ts") || e.includes("node_modules") || e.includes("/test/")), [], "nothing of the sources, tests or dependencies");
  const listing = run("tar", ["-tvzf", first]);
  assert.ok(!/ [1-9][0-9]*\/| root\//.test(listing) && listing.split("\n").filter(Boolean).every((l) => l.includes(" 0/0 ")), "owner and group are 0/0");
});

test("the tarball installs with make install and node, ssh and coreutils only; the programs run, publish a route, and make uninstall removes every file", { skip: skip || sshdMissing, timeout: 300_000 }, async (t) => {
  const unpacked = openDir(t, "conductor-unpacked-");
  run("tar", ["-xzf", buildTarball(t), "-C", unpacked]);
  const release = join(unpacked, `conductor-${VERSION}`);
  const path = sysadminPath(t);
  const env = { PATH: path, HOME: "/root" };
  const found = spawnSync("sh", ["-c", "command -v npm || command -v npx || command -v tsc"], { env, encoding: "utf8" });
  assert.ok(found.status !== 0 && found.stdout === "", `no npm, npx or tsc on this PATH: ${found.stdout}`);

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
