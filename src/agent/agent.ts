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
import { agentAnswers, sshAdd } from "./ssh_add.ts";
import { liveState, updateState, type AgentState } from "./state.ts";

/** The running agent's state; throws `CONDUCTOR_ERR_AGENT` saying how to start one when none runs. */
export async function requireAgent(files: AgentFiles): Promise<AgentState> {
  const state = await liveState(files);
  if (state === null) {
    throw new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot use conductor-agent: none runs on ${files.socket}; start one with: eval "$(conductor-agent start)"`);
  }
  return state;
}

/**
 * Unlocks the agent if it is locked, and marks it used now: what a caller
 * runs before an SSH operation. After a failed unlock it fails at once,
 * without asking the agent again (it delays every client after a failure).
 */
export async function useAgent(files: AgentFiles): Promise<AgentState> {
  await requireAgent(files);
  let failure: ConductorError | null = null;
  const state = await updateState(files, async (state) => {
    if (state.unlockFailed) {
      failure = new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot unlock the agent on ${files.socket}: an earlier unlock failed, and it is not tried again (a failed unlock makes the agent slow down every client); restart it: conductor-agent stop, then start`);
      return state;
    }
    if (!state.locked) return { ...state, lastUse: Date.now() };
    try {
      await unlockNow(files);
    } catch (err) {
      failure = err as ConductorError;
      return { ...state, unlockFailed: true };
    }
    return { ...state, locked: false, lastUse: Date.now() };
  });
  if (failure !== null) throw failure;
  return state;
}

/** {@link useAgent} when a conductor-agent runs on `files`; nothing when none does (ssh then finds keys elsewhere). */
export async function useAgentIfRunning(files: AgentFiles): Promise<void> {
  if (await liveState(files) !== null) await useAgent(files);
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

/** The agent's status; throws when it does not answer. */
export async function agentStatus(files: AgentFiles): Promise<AgentStatus> {
  const state = await requireAgent(files);
  if (!await agentAnswers(files)) throw new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot use the agent on ${files.socket}: it (pid ${state.agentPid}) does not answer; restart it: conductor-agent stop, then start`);
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
    if (await agentAnswers(files)) {
      throw new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot stop the agent on ${files.socket}: no conductor-agent state says whose it is; stop it yourself (SSH_AUTH_SOCK=${files.socket} ssh-agent -k, or kill it)`);
    }
    await removeAgentFiles(files);
    return false;
  }
  signal(state.lockerPid, "SIGTERM");
  const soft = Date.now() + 10_000;
  while (processAlive(state.lockerPid, state.lockerStarted) || processAlive(state.agentPid, state.agentStarted ?? 0)) {
    if (Date.now() > soft + 5000) throw new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot stop the agent: it (pid ${state.agentPid}) or its locker (pid ${state.lockerPid}) did not stop within 5 s; kill them`);
    if (Date.now() > soft) {
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
