/**
 * Local attackers on the gateway: other users of the gateway host (bob)
 * against alice's routes, sockets, directories and state, and one user
 * against everyone (a flood, a flood of routes).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { needsRoot } from "../helpers/env.ts";
import { startGateway } from "../helpers/gateway.ts";
import { publicDist } from "../helpers/install.ts";
import { startProcess } from "../helpers/process.ts";
import { register } from "../helpers/register.ts";
import { attempt, runAs } from "../helpers/as_user.ts";

test("bob cannot reach, swap or read what is alice's on the gateway", { skip: needsRoot }, async (t) => {
  const gw = await startGateway(t);
  const alice = await register(t, gw.controlPath, { key: "private", token: "alice-token" });
  assert.equal(alice.reply.status, "ok");
  const dir = alice.banner.directory as string;
  const socket = join(dir, "socket");

  // The directory names are not listable: bob cannot learn alice's.
  assert.equal(await runAs(t, "bob", attempt("fs.readdirSync(a)"), join(gw.runtimeDir, "sockets")), "EACCES");
  // Connecting to, renaming or replacing alice's socket: the locked directory keeps bob out.
  assert.equal(await runAs(t, "bob", attempt("await new Promise((ok, no) => net.connect(a).on('connect', ok).on('error', no))"), socket), "EACCES");
  assert.equal(await runAs(t, "bob", attempt("fs.renameSync(a, a + '.x')"), socket), "EACCES");
  assert.equal(await runAs(t, "bob", attempt("fs.writeFileSync(a + '2', 'x')"), socket), "EACCES");
  // The gateway's state is the gateway's alone.
  assert.equal(await runAs(t, "bob", attempt("fs.readFileSync(a)"), join(gw.runtimeDir, "state", "users", "alice.json")), "EACCES");
  assert.equal(await runAs(t, "bob", attempt("fs.readdirSync(a)"), join(gw.runtimeDir, "state", "users")), "EACCES");
  assert.equal(await runAs(t, "bob", attempt("fs.readdirSync(a)"), join(gw.runtimeDir, "state")), "EACCES");
});

test("between banner and config, bob cannot swap the socket alice placed (sticky directory)", { skip: needsRoot }, async (t) => {
  const gw = await startGateway(t);
  // Alice places her socket but has not sent her config yet.
  const alice = startProcess(t, process.execPath, ["--input-type=module", "-e", `
    import * as net from "node:net"; import * as fs from "node:fs";
    const control = net.connect(process.argv[1]);
    control.once("data", (line) => {
      const dir = JSON.parse(line.toString()).directory;
      net.createServer().listen(dir + "/socket", () => { fs.chmodSync(dir + "/socket", 0o660); console.log(dir); });
    });
    process.stdin.resume(); process.stdin.on("end", () => process.exit(0));`, gw.controlPath], { user: "alice", stdin: true });
  const dir = await new Promise<string>((resolve) => {
    const poll = setInterval(() => { if (alice.stdout.length > 0) { clearInterval(poll); resolve(alice.stdout[0]); } }, 20);
  });
  const socket = join(dir, "socket");
  // Bob, who somehow knows the directory, tries to take the place of alice's socket.
  assert.equal(await runAs(t, "bob", attempt("fs.unlinkSync(a)"), socket), "EPERM");
  assert.equal(await runAs(t, "bob", attempt("fs.renameSync(a, a + '.mine')"), socket), "EPERM");
  assert.equal(await runAs(t, "bob", attempt("await new Promise((ok, no) => net.createServer().listen(a, ok).on('error', no))"), socket), "EADDRINUSE");
  alice.child.stdin!.end();
});

test("one user cannot register more routes than the per-user limit, and is told so", { skip: needsRoot, timeout: 120_000 }, async (t) => {
  const gw = await startGateway(t);
  // Ten thousand tries from one process of alice's; the gateway keeps 64 and refuses the rest.
  const flood = startProcess(t, process.execPath, [join(publicDist(), "test", "bench", "registrar.js"), gw.controlPath, "10000", "0"], { user: "alice", stdin: true });
  const result = await flood.waitForJson((l) => l.done === true, 100_000);
  assert.equal(result.registered, 64);
  assert.match(String(result.refused), /user alice already holds 64 routes, the limit of this gateway; stop some \(conductor list\) first/);
  // Bob is not affected.
  const bob = await register(t, gw.controlPath, { key: "mine", token: "bob", user: "bob" });
  assert.equal(bob.reply.status, "ok");
});

test("a flood of control connections that never speak does not lock others out", { skip: needsRoot }, async (t) => {
  const gw = await startGateway(t);
  const flood = startProcess(t, process.execPath, ["--input-type=module", "-e", `
    import * as net from "node:net";
    let banners = 0;
    for (let i = 0; i < 300; i++) {
      net.connect(process.argv[1]).on("error", () => {}).once("data", () => { if (++banners === 300) console.log(JSON.stringify({ flooding: banners })); });
    }
    process.stdin.resume(); process.stdin.on("end", () => process.exit(0));`, gw.controlPath], { user: "bob", stdin: true });
  // Every one of the 300 silent connections holds its slot (it got its banner) before alice tries.
  await flood.waitForJson((l) => l.flooding === 300);
  const alice = await register(t, gw.controlPath, { key: "despite", token: "t" });
  assert.equal(alice.reply.status, "ok");
  assert.ok(readdirSync(join(gw.runtimeDir, "sockets")).length >= 300, "the idle connections hold their directories until they time out");
  flood.child.stdin!.end();
  await flood.exited;
});

test("a tree alice builds in her client directory is not walked when it is removed: nothing outside it can be deleted through a swapped path", { skip: needsRoot }, async (t) => {
  const gw = await startGateway(t);
  // The gateway's own state, which a symbolic link in alice's tree points at.
  const victim = join(gw.runtimeDir, "state");
  const before = readdirSync(victim).sort();
  const alice = startProcess(t, process.execPath, ["--input-type=module", "-e", `
    import * as net from "node:net"; import * as fs from "node:fs";
    const control = net.connect(process.argv[1]);
    control.once("data", (line) => {
      const dir = JSON.parse(line.toString()).directory;
      fs.mkdirSync(dir + "/a/b", { recursive: true });
      fs.chmodSync(dir + "/a", 0o777); fs.chmodSync(dir + "/a/b", 0o777);
      fs.writeFileSync(dir + "/a/b/file", "mine");
      fs.symlinkSync(process.argv[2], dir + "/a/link");
      fs.symlinkSync(process.argv[2], dir + "/top-link");
      console.log(dir);
      control.end();
    });`, gw.controlPath, victim], { user: "alice" });
  await alice.exited;
  const dir = alice.stdout[0];
  const warning = await gw.process.waitForJson((l) => l.msg === "cannot remove client directory; it is locked, remove it as root", 60_000, "stderr");
  assert.equal(warning.dir, dir);
  assert.match((warning.error as { message: string }).message, /"a" \(a directory of uid \d+ with content\), which the gateway does not walk into/);
  // What alice made inside her directory is left as it was, locked away; the link at the top is gone, its target is not.
  assert.equal(statSync(dir).mode & 0o7777, 0o700);
  assert.deepEqual(readdirSync(dir), ["a"]);
  assert.equal(readFileSync(join(dir, "a", "b", "file"), "utf8"), "mine");
  assert.deepEqual(readdirSync(victim).sort(), before);
});
