/**
 * Where a conductor-agent keeps its things: the agent's socket, and beside it
 * the state file, the lock password (0600) and the one-shot askpass program
 * that hands the password to ssh-add, all in a private (0700) directory.
 *
 * @module
 */
import { lstatSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { dirname, join } from "node:path";
import { ConductorError } from "../lib/errors.ts";

/** Longest socket path accepted: sun_path holds 108 bytes, and ssh-agent binds a temporary name beside it first. */
export const MAX_SOCKET_BYTES = 100;

/** The files of the agent at `socket`. */
export interface AgentFiles {
  socket: string;
  dir: string;
  /** JSON: pids, lock state, last use. */
  state: string;
  /** The lock password, mode 0600. */
  password: string;
  /** A program printing the password, for SSH_ASKPASS, mode 0700. */
  askpass: string;
}

/**
 * The default socket: `$XDG_RUNTIME_DIR/conductor/agent.sock`, else
 * `~/.local/state/conductor/agent-HOST.sock` (a home shared over NFS holds
 * one per node: an agent and its pids are one host's).
 */
export function defaultSocket(env: NodeJS.ProcessEnv, host = hostname()): string {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime !== undefined && runtime.startsWith("/")) return join(runtime, "conductor", "agent.sock");
  return join(env.HOME || homedir(), ".local", "state", "conductor", `agent-${host.split(".")[0]}.sock`);
}

/** The files of the agent at `socket` (absolute); throws `CONDUCTOR_ERR_USAGE` when the path cannot serve. */
export function agentFiles(socket: string): AgentFiles {
  if (!socket.startsWith("/")) throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot use agent socket ${socket}: give an absolute path`);
  if (Buffer.byteLength(socket) > MAX_SOCKET_BYTES) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE",
      `Cannot use agent socket ${socket}: it is ${Buffer.byteLength(socket)} bytes long, and UNIX socket paths must stay under ${MAX_SOCKET_BYTES}; give a shorter one with --socket`);
  }
  if (socket.includes("'") || socket.includes("\n")) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot use agent socket ${JSON.stringify(socket)}: quotes and newlines are not allowed in its path`);
  }
  return { socket, dir: dirname(socket), state: `${socket}.json`, password: `${socket}.password`, askpass: `${socket}.askpass` };
}

/**
 * True when `socket` looks like this user's conductor-agent: its state file is
 * beside it, a regular file of the user's, in a directory of the user's that
 * nobody else can enter (so nobody else put it there).
 */
export function isConductorAgent(socket: string): boolean {
  if (!socket.startsWith("/")) return false;
  try {
    const uid = process.geteuid!();
    const dir = lstatSync(dirname(socket));
    const state = lstatSync(`${socket}.json`);
    return dir.isDirectory() && dir.uid === uid && (dir.mode & 0o077) === 0 && state.isFile() && state.uid === uid;
  } catch {
    return false;
  }
}
