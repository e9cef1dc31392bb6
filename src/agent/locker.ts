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
import { liveState, updateState, type AgentState } from "./state.ts";

/** Set for the locker that ssh-agent starts: it is the locker, not a new start. */
export const LOCKER_ENV = "CONDUCTOR_AGENT_LOCKER";

/**
 * Starts ssh-agent on `files.socket` with this program as its command, in
 * the locker's role (`args` are the locker's own: --foreground, --idle,
 * --key); `detached` for the background, else attached to this terminal.
 */
export async function spawnAgent(files: AgentFiles, args: string[], detached: boolean): Promise<ChildProcess> {
  await ensurePrivateDir(files.dir);
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
  if (!Number.isInteger(agentPid) || agentPid <= 0) throw new ConductorError("CONDUCTOR_ERR_AGENT", "The locker runs only under ssh-agent: use conductor-agent start");
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
  const state: AgentState = {
    agentPid, lockerPid: process.pid, lockerStarted: processStartTime(process.pid), idleSeconds, locked: false, lastUse: Date.now(),
  };
  await writeJsonAtomic(files.state, state);
  logger.info("agent started", { socket: files.socket, pid: agentPid, idleSeconds });
  await ready(state);

  const why = await new Promise<"stopped" | "agent">((resolve) => {
    for (const name of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.once(name, () => resolve("stopped"));
    const timer = setInterval(() => {
      if (!processAlive(agentPid)) {
        clearInterval(timer);
        resolve("agent");
        return;
      }
      lockIfIdle(files, logger).catch((err) => {
        // Fail safe: an agent that cannot be locked must not stay unlocked.
        logger.error(`${messageOf(err)}; stopping the agent`);
        kill(agentPid);
      });
    }, 1000);
  });
  kill(agentPid);
  for (let i = 0; i < 200 && processAlive(agentPid); i++) await new Promise((r) => setTimeout(r, 50));
  await removeAgentFiles(files);
  if (why === "agent") {
    logger.error("ssh-agent ended; the locker stops too", { socket: files.socket });
    return 1;
  }
  logger.info("agent stopped", { socket: files.socket });
  return 0;
}

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGTERM");
  } catch { /* gone */ }
}

/** Locks the agent when it has not been used for its idle time. */
async function lockIfIdle(files: AgentFiles, logger: Logger): Promise<void> {
  const state = await liveState(files);
  if (state === null || state.locked || Date.now() - state.lastUse < state.idleSeconds * 1000) return;
  await updateState(files, async (current) => {
    if (current.locked || Date.now() - current.lastUse < current.idleSeconds * 1000) return current;
    await lockNow(files);
    logger.info("agent locked after its idle time", { socket: files.socket, idleSeconds: current.idleSeconds });
    return { ...current, locked: true };
  });
}
