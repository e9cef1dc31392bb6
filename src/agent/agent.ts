/**
 * conductor-agent's operations on a running agent: use (unlock if locked and
 * mark use), lock, unlock, status and stop. A wrong lock password is reported,
 * never retried: OpenSSH's agent delays every client after a failed unlock.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { ConductorError } from "../lib/errors.ts";
import { processAlive } from "../state/lock.ts";
import type { AgentFiles } from "./files.ts";
import { sshAdd } from "./ssh_add.ts";
import { liveState, updateState, type AgentState } from "./state.ts";

/** The running agent's state; throws `CONDUCTOR_ERR_AGENT` saying how to start one when none runs. */
export async function requireAgent(files: AgentFiles): Promise<AgentState> {
  const state = await liveState(files);
  if (state === null) {
    throw new ConductorError("CONDUCTOR_ERR_AGENT", `No conductor-agent runs on ${files.socket}; start one with: eval "$(conductor-agent start)"`);
  }
  return state;
}

/** Unlocks the agent if it is locked, and marks it used now: what a caller runs before an SSH operation. */
export async function useAgent(files: AgentFiles): Promise<AgentState> {
  await requireAgent(files);
  return updateState(files, async (state) => {
    if (state.locked) await unlockNow(files);
    return { ...state, locked: false, lastUse: Date.now() };
  });
}

/** Locks the agent now: it lists no keys and signs nothing until unlocked. */
export async function lockAgent(files: AgentFiles): Promise<AgentState> {
  await requireAgent(files);
  return updateState(files, async (state) => {
    if (!state.locked) await lockNow(files);
    return { ...state, locked: true };
  });
}

/** Locks the agent with its password (ssh-add -x through the askpass program). */
export async function lockNow(files: AgentFiles): Promise<void> {
  const result = await sshAdd(files, ["-x"], { askpass: true });
  if (result.code !== 0) throw new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot lock the agent on ${files.socket}: ${result.stderr.trim() || `ssh-add exited ${result.code}`}`);
}

async function unlockNow(files: AgentFiles): Promise<void> {
  const result = await sshAdd(files, ["-X"], { askpass: true });
  if (result.code !== 0) {
    throw new ConductorError("CONDUCTOR_ERR_AGENT",
      `Cannot unlock the agent on ${files.socket}: ${result.stderr.trim() || `ssh-add exited ${result.code}`}; its password file ${files.password} may have been changed: stop and start the agent`);
  }
}

/** What `status` reports. */
export interface AgentStatus {
  socket: string;
  pid: number;
  lockerPid: number;
  locked: boolean;
  idleSeconds: number;
  /** Seconds since the last use. */
  unusedSeconds: number;
  /** The keys' fingerprints (ssh-add -l), when unlocked. */
  keys: string[];
}

/** The agent's status. */
export async function agentStatus(files: AgentFiles): Promise<AgentStatus> {
  const state = await requireAgent(files);
  const listed = state.locked ? null : await sshAdd(files, ["-l"]);
  return {
    socket: files.socket,
    pid: state.agentPid,
    lockerPid: state.lockerPid,
    locked: state.locked,
    idleSeconds: state.idleSeconds,
    unusedSeconds: Math.max(0, Math.floor((Date.now() - state.lastUse) / 1000)),
    keys: listed !== null && listed.code === 0 ? listed.stdout.trim().split("\n") : [],
  };
}

/**
 * Stops the locker and the agent; resolves once both are gone and their files
 * removed: true, or false when none ran (files left by a killed one are removed).
 */
export async function stopAgent(files: AgentFiles): Promise<boolean> {
  const state = await liveState(files);
  if (state === null) {
    await removeAgentFiles(files);
    return false;
  }
  signal(state.lockerPid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (processAlive(state.lockerPid, state.lockerStarted) || processAlive(state.agentPid)) {
    if (Date.now() > deadline) {
      signal(state.lockerPid, "SIGKILL");
      signal(state.agentPid, "SIGKILL");
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await removeAgentFiles(files);
  return true;
}

/** Removes the socket, state, password and askpass files. */
export async function removeAgentFiles(files: AgentFiles): Promise<void> {
  for (const path of [files.socket, files.state, `${files.state}.lock`, files.password, files.askpass]) await fs.rm(path, { force: true });
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch { /* gone */ }
}
