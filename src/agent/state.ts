/**
 * The agent's state file, shared by the locker and every process that uses
 * the agent: who runs it, whether it is locked (an empty key list cannot tell
 * locked from empty), and when it was last used. Updated atomically under the
 * project's lock, so any process (on an NFS home too) can mark use.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { updateJson } from "../state/json_file.ts";
import { processAlive } from "../state/lock.ts";
import type { AgentFiles } from "./files.ts";

/** What the state file holds. */
export interface AgentState {
  /** The ssh-agent process. */
  agentPid: number;
  /** Its start time (/proc), so that a reused pid is not taken for it. */
  agentStarted?: number;
  /** The locker (conductor-agent start --foreground), the agent's parent. */
  lockerPid: number;
  /** The locker's start time (/proc), so that a reused pid is not taken for it. */
  lockerStarted: number;
  /** Lock after this many seconds without use. */
  idleSeconds: number;
  locked: boolean;
  /** Last use, ms since the epoch. */
  lastUse: number;
  /** An unlock failed (a wrong password): it is not tried again, the agent must be restarted. */
  unlockFailed?: boolean;
}

/** The state file's contents, or null when it is missing or unreadable (nothing is moved aside: readers only look). */
export async function readState(files: AgentFiles): Promise<AgentState | null> {
  try {
    const state = JSON.parse(await fs.readFile(files.state, "utf8")) as AgentState;
    return typeof state.lockerPid === "number" && typeof state.agentPid === "number" ? state : null;
  } catch {
    return null;
  }
}

/** The state of the agent at `files`, or null when there is none or its locker is gone. */
export async function liveState(files: AgentFiles): Promise<AgentState | null> {
  const state = await readState(files);
  return state !== null && processAlive(state.lockerPid, state.lockerStarted) ? state : null;
}

/** Changes the state under its lock; `change` may run ssh-add (lock, unlock) while holding it. */
export function updateState(files: AgentFiles, change: (state: AgentState) => AgentState | Promise<AgentState>): Promise<AgentState> {
  return updateJson<AgentState>(files.state, () => { throw new Error(`no agent state at ${files.state}`); }, change);
}
