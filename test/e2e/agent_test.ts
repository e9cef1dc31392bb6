/**
 * conductor-agent with the real ssh-agent, ssh-add and a private sshd, as
 * alice: it locks itself after its idle time and is unlocked by `use` and by
 * conductor before it connects; a second start adopts the first; stop leaves
 * nothing; a killed locker takes its agent down; the lock password never
 * shows in any process's command line or environment.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { startConductor, userDir } from "../helpers/conductor.ts";
import { account } from "../helpers/accounts.ts";
import { needsRoot } from "../helpers/env.ts";
import { startGateway } from "../helpers/gateway.ts";
import { bin } from "../helpers/install.ts";
import { startProcess } from "../helpers/process.ts";
import { isAlive, processesMatching } from "../helpers/procs.ts";
import { sshdMissing, startSshd, type TestSshd } from "../helpers/sshd.ts";
import { waitFor } from "../helpers/wait.ts";
import { defer, type Cleanup } from "../helpers/cleanup.ts";

const skip = sshdMissing || needsRoot;

/** Runs conductor-agent as alice; resolves with its exit status and output. */
async function agent(t: Cleanup | null, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = startProcess(t, process.execPath, [bin("conductor-agent"), ...args], { user: "alice" });
  const { code } = await proc.exited;
  await proc.closed;
  return { code, stdout: proc.stdout.join("\n"), stderr: proc.stderr.join("\n") };
}

/** ssh's options to reach the private sshd as alice with keys from the agent at `socket` only. */
function agentOptions(sshd: TestSshd, socket: string): string[] {
  return [...sshd.clientOptions("alice").filter((o) => !o.startsWith("IdentityFile=") && !o.startsWith("IdentitiesOnly=")), `IdentityAgent=${socket}`, "BatchMode=yes"];
}

/** Whether ssh, as alice through the agent at `socket`, logs in. */
function sshWorks(sshd: TestSshd, socket: string): boolean {
  const a = account("alice");
  const options = agentOptions(sshd, socket).flatMap((o) => ["-o", o]);
  const result = spawnSync("ssh", [...options, "-p", String(sshd.port), "--", `${sshd.loginName("alice")}@127.0.0.1`, "true"], { uid: a.uid, gid: a.gid, env: { HOME: a.home, PATH: process.env.PATH }, encoding: "utf8" });
  return result.status === 0;
}

/** Processes whose command line or environment holds `secret`. */
function leaking(secret: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((d) => /^[0-9]+$/.test(d))) {
    for (const file of ["cmdline", "environ"]) {
      try {
        if (readFileSync(`/proc/${pid}/${file}`, "latin1").includes(secret)) found.push(`${pid}/${file}`);
      } catch { /* gone, or not ours to read */ }
    }
  }
  return found;
}

test("conductor-agent locks itself after --idle", { skip, timeout: 120_000 }, async (t) => {
  const socket = join(userDir(t, "alice"), "agent.sock");
  defer(t, () => agent(null, ["stop", "--socket", socket]));
  assert.equal((await agent(t, ["start", "--socket", socket, "--idle", "2s"])).code, 0);
  const status = async () => JSON.parse((await agent(t, ["status", "--socket", socket, "--json"])).stdout) as { locked: boolean };
  assert.equal((await status()).locked, false);
  assert.ok(await waitFor(async () => (await status()).locked, 60_000), "the agent locks after its idle time");
});

test("a locked conductor-agent signs nothing; use, and conductor before connecting, unlock it; the password shows nowhere", { skip, timeout: 180_000 }, async (t) => {
  const sshd = await startSshd(t);
  const socket = join(userDir(t, "alice"), "agent.sock");
  const key = sshd.clientOptions("alice").find((o) => o.startsWith("IdentityFile="))!.slice("IdentityFile=".length);
  defer(t, () => agent(null, ["stop", "--socket", socket]));
  // Locked on demand here: an hour of idle time never runs out in the middle of a check.
  const started = await agent(t, ["start", "--socket", socket, "--idle", "1h", "--key", key]);
  assert.equal(started.code, 0, started.stderr);
  assert.equal(started.stdout, `SSH_AUTH_SOCK='${socket}'; export SSH_AUTH_SOCK;`);
  const password = readFileSync(`${socket}.password`, "utf8").trim();
  assert.ok(password.length >= 40);
  assert.ok(sshWorks(sshd, socket), "ssh logs in with the agent's key");

  const status = async () => JSON.parse((await agent(t, ["status", "--socket", socket, "--json"])).stdout) as { locked: boolean };
  assert.equal((await agent(t, ["lock", "--socket", socket])).code, 0);
  assert.equal((await status()).locked, true);
  assert.equal(sshWorks(sshd, socket), false, "a locked agent signs nothing");
  assert.deepEqual(leaking(password), [], "the password is in no command line and no environment");

  assert.equal((await agent(t, ["use", "--socket", socket])).code, 0);
  assert.ok(sshWorks(sshd, socket), "use unlocked it, and the key signs again: it stayed loaded, no passphrase was needed");

  // While ssh-add and its askpass run, too: every process is scanned again and again through ten locks and unlocks.
  let cycling = true;
  const seen: string[] = [];
  let scans = 0;
  const scanner = (async () => {
    while (cycling) {
      seen.push(...leaking(password));
      scans++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  for (let i = 0; i < 10; i++) {
    assert.equal((await agent(t, ["lock", "--socket", socket])).code, 0);
    assert.equal((await agent(t, ["use", "--socket", socket])).code, 0);
  }
  cycling = false;
  await scanner;
  assert.deepEqual(seen, [], `the password showed nowhere in ${scans} scans during ten locks and unlocks`);

  // conductor, given a locked agent and nothing else to log in with, unlocks it before it connects.
  assert.equal((await agent(t, ["lock", "--socket", socket])).code, 0);
  const gw = await startGateway(t);
  const run = startConductor(t, sshd, gw, { key: "agented", env: { SSH_AUTH_SOCK: socket }, sshOptions: agentOptions(sshd, socket) });
  await run.live();
  assert.deepEqual(leaking(password), [], "still nowhere");
  run.process.child.kill("SIGTERM");
  assert.equal((await run.process.exited).code, 0);

  const stopped = await agent(t, ["stop", "--socket", socket]);
  assert.equal(stopped.code, 0, stopped.stderr);
  for (const file of [socket, `${socket}.password`, `${socket}.json`, `${socket}.askpass`]) assert.equal(existsSync(file), false, `${file} is gone`);
  assert.deepEqual(processesMatching(`ssh-agent -a ${socket}`), [], "no agent is left");
});

test("conductor-agent starts at once make one agent; a killed locker takes its agent down; stop leaves nothing", { skip, timeout: 120_000 }, async (t) => {
  const socket = join(userDir(t, "alice"), "agent.sock");
  defer(t, () => agent(null, ["stop", "--socket", socket]));
  const starts = await Promise.all([1, 2, 3].map(() => agent(t, ["start", "--socket", socket, "--json"])));
  for (const s of starts) assert.equal(s.code, 0, s.stderr);
  const made = starts.map((s) => JSON.parse(s.stdout) as { pid: number; lockerPid: number; adopted: boolean });
  assert.equal(made.filter((m) => !m.adopted).length, 1, "one start made the agent, the others adopted it");
  assert.equal(new Set(made.map((m) => m.pid)).size, 1, "the same agent for all");
  assert.equal(processesMatching(`ssh-agent -a ${socket}`).length, 1, "one agent process");
  const first = made.find((m) => !m.adopted)!;

  process.kill(first.lockerPid, "SIGKILL");
  // The agent checks every 10 s that its locker (the command it runs) is still there.
  assert.ok(await waitFor(() => !isAlive(first.pid), 60_000), "the agent goes with its locker");
  assert.equal(existsSync(socket), false, "and its socket");
  const status = await agent(t, ["status", "--socket", socket]);
  assert.equal(status.code, 1);
  assert.match(status.stderr, /Cannot use conductor-agent: none runs on .*agent\.sock; start one with: eval "\$\(conductor-agent start\)"/);
  const stop = await agent(t, ["stop", "--socket", socket]);
  assert.equal(stop.code, 0);
  for (const file of [`${socket}.password`, `${socket}.json`, `${socket}.askpass`]) assert.equal(existsSync(file), false, `${file} is removed`);
});

test("a conductor-agent whose state file is deleted stops: nothing would lock it any more", { skip, timeout: 120_000 }, async (t) => {
  const socket = join(userDir(t, "alice"), "agent.sock");
  defer(t, () => agent(null, ["stop", "--socket", socket]));
  const made = JSON.parse((await agent(t, ["start", "--socket", socket, "--json", "--idle", "1h"])).stdout) as { pid: number; lockerPid: number };
  rmSync(`${socket}.json`);
  assert.ok(await waitFor(() => !isAlive(made.pid) && !isAlive(made.lockerPid), 60_000), "the agent and its locker stop");
  assert.equal(existsSync(socket), false, "the socket is gone");
  assert.equal(existsSync(`${socket}.password`), false, "and the password");
});
