/**
 * The locker: runs under ssh-agent, as the command ssh-agent starts
 * (`ssh-agent -a SOCKET -- conductor-agent start --foreground ...`), and
 * locks the agent once it has gone unused for the idle time. Fail-safe: an
 * agent started with a command checks every 10 seconds that its command still
 * runs and exits when it does not (kernel death signals do not survive the
 * exec of the setgid ssh-agent), so a killed locker never leaves it up; a
 * lock that fails stops the agent.
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { ConductorError, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { writeJsonAtomic } from "../state/json_file.ts";
import { processAlive, processStartTime } from "../state/lock.ts";
import { ensurePrivateDir } from "../state/private_dir.ts";
import { lockNow, removeAgentFiles } from "./agent.ts";
import type { AgentFiles } from "./files.ts";
import { agentAnswers } from "./ssh_add.ts";
import { readState, updateState, type AgentState } from "./state.ts";

/** Set for the locker that ssh-agent starts: it is the locker, not a new start. */
export const LOCKER_ENV = "CONDUCTOR_AGENT_LOCKER";

/**
 * Starts ssh-agent on `files.socket` with this program as its command, in
 * the locker's role (`args` are the locker's own: --foreground, --idle,
 * --key); `detached` for the background, else attached to this terminal.
 */
export async function spawnAgent(files: AgentFiles, args: string[], detached: boolean): Promise<ChildProcess> {
  if (await agentAnswers(files)) {
    throw new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot start an agent on ${files.socket}: another agent answers there, and no conductor-agent state says it is one of ours; stop it or choose another --socket`);
  }
  await removeAgentFiles(files);
  const env: NodeJS.ProcessEnv = { ...process.env, [LOCKER_ENV]: "1" };
  delete env.SSH_AUTH_SOCK;
  delete env.SSH_AGENT_PID;
  const child = spawn("ssh-agent", ["-a", files.socket, "--", process.execPath, process.argv[1], "start", "--socket", files.socket, ...args],
    { env, detached, stdio: detached ? "ignore" : "inherit" });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (err) => reject(new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot run ssh-agent: ${err.message}; install OpenSSH's client`)));
  });
  return child;
}

/**
 * The locker's work, under ssh-agent: makes the lock password, records the
 * state, calls `ready`, then locks the agent after `idleSeconds` without use,
 * until SIGTERM, SIGINT or SIGHUP (exit 0) or the agent's end (exit 1).
 */
export async function runLocker(files: AgentFiles, idleSeconds: number, logger: Logger, ready: (state: AgentState) => Promise<void>): Promise<number> {
  const agentPid = Number(process.env.SSH_AGENT_PID);
  delete process.env.SSH_AGENT_PID;
  delete process.env[LOCKER_ENV];
  if (!Number.isInteger(agentPid) || agentPid <= 0) throw new ConductorError("CONDUCTOR_ERR_AGENT", "Cannot run the locker by itself: it runs only under ssh-agent; use conductor-agent start");
  await fs.writeFile(files.password, randomBytes(32).toString("base64url") + "\n", { mode: 0o600, flag: "wx" });
  await fs.writeFile(files.askpass, `#!/bin/sh\nexec cat '${files.password}'\n`, { mode: 0o700, flag: "wx" });
  const deadline = Date.now() + 10_000;
  while (!await agentAnswers(files)) {
    if (!processAlive(agentPid) || Date.now() > deadline) {
      await removeAgentFiles(files);
      throw new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot start ssh-agent on ${files.socket}: it did not answer`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const agentStarted = processStartTime(agentPid);
  const state: AgentState = {
    agentPid, agentStarted, lockerPid: process.pid, lockerStarted: processStartTime(process.pid), idleSeconds, locked: false, lastUse: Date.now(),
  };
  await writeJsonAtomic(files.state, state);
  logger.info("agent started", { socket: files.socket, pid: agentPid, idleSeconds });
  const end = async (): Promise<void> => {
    kill(agentPid);
    for (let i = 0; i < 200 && processAlive(agentPid, agentStarted); i++) await new Promise((r) => setTimeout(r, 50));
    await removeAgentFiles(files);
  };
  try {
    await ready(state);
  } catch (err) {
    await end();
    throw err;
  }

  let stopped = false;
  // Repeated signals (Ctrl-C reaches the whole foreground group) change nothing.
  for (const name of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(name, () => { stopped = true; });
  let why: string | null = null;
  while (why === null) {
    await new Promise((r) => setTimeout(r, stopped ? 0 : 1000));
    if (stopped) break;
    why = await check(files, agentPid, agentStarted, logger);
  }
  await end();
  if (why !== null) {
    logger.error(`${why}; the agent is stopped`, { socket: files.socket });
    return 1;
  }
  logger.info("agent stopped", { socket: files.socket });
  return 0;
}

/**
 * One look, once a second: why the agent must stop (its state file is gone or
 * not its own, so nothing would lock it; it died; it could not be locked), or
 * null after locking it if it has been idle.
 */
async function check(files: AgentFiles, agentPid: number, agentStarted: number, logger: Logger): Promise<string | null> {
  if (!processAlive(agentPid, agentStarted)) return "ssh-agent ended";
  const state = await readState(files);
  if (state === null || state.lockerPid !== process.pid) return `its state file ${files.state} is gone or another's`;
  try {
    await lockIfIdle(files, logger);
    return null;
  } catch (err) {
    // Fail safe: an agent that cannot be locked must not stay unlocked.
    return messageOf(err);
  }
}

/** The socket's directory: made private (0700) when missing; an existing one must be private already, not made so. */
export async function agentDir(dir: string): Promise<void> {
  const st = await fs.lstat(dir).catch(() => null);
  if (st === null) {
    await ensurePrivateDir(dir);
    return;
  }
  if (!st.isDirectory() || st.uid !== process.geteuid!() || (st.mode & 0o077) !== 0) {
    throw new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot keep the agent's socket and password in ${dir}: it must be a directory of yours that nobody else can enter (mode 0700); choose another --socket`);
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGTERM");
  } catch { /* gone */ }
}

/** Locks the agent when it has not been used for its idle time. */
async function lockIfIdle(files: AgentFiles, logger: Logger): Promise<void> {
  const state = await readState(files);
  if (state === null || state.locked || Date.now() - state.lastUse < state.idleSeconds * 1000) return;
  await updateState(files, async (current) => {
    if (current.locked || Date.now() - current.lastUse < current.idleSeconds * 1000) return current;
    await lockNow(files);
    logger.info("agent locked after its idle time", { socket: files.socket, idleSeconds: current.idleSeconds });
    return { ...current, locked: true };
  });
}
