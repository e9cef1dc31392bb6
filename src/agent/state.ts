/**
 * The agent's state file, shared by the locker and every process that uses
 * the agent: who runs it, whether it is locked (an empty key list cannot tell
 * locked from empty), and when it was last used. Updated atomically under the
 * project's lock, so any process (on an NFS home too) can mark use.
 *
 * @module
 */
import { readJson, updateJson } from "../state/json_file.ts";
import { processAlive } from "../state/lock.ts";
import type { AgentFiles } from "./files.ts";

/** What the state file holds. */
export interface AgentState {
  /** The ssh-agent process. */
  agentPid: number;
  /** The locker (conductor-agent start --foreground), the agent's parent. */
  lockerPid: number;
  /** The locker's start time (/proc), so that a reused pid is not taken for it. */
  lockerStarted: number;
  /** Lock after this many seconds without use. */
  idleSeconds: number;
  locked: boolean;
  /** Last use, ms since the epoch. */
  lastUse: number;
}

/** The state of the agent at `files`, or null when there is none or its locker is gone. */
export async function liveState(files: AgentFiles): Promise<AgentState | null> {
  const state = await readJson(files.state).catch(() => undefined) as AgentState | undefined;
  if (state === undefined || typeof state.lockerPid !== "number") return null;
  return processAlive(state.lockerPid, state.lockerStarted) ? state : null;
}

/** Changes the state under its lock; `change` may run ssh-add (lock, unlock) while holding it. */
export function updateState(files: AgentFiles, change: (state: AgentState) => AgentState | Promise<AgentState>): Promise<AgentState> {
  return updateJson<AgentState>(files.state, () => { throw new Error(`no agent state at ${files.state}`); }, change);
}
