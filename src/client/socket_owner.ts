/**
 * Who listens on a UNIX socket path: /proc/net/unix names the socket inodes
 * bound to a path, /proc/PID/fd shows which of the user's own processes hold
 * them. Used before starting an app on a socket that already exists.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { readProcFile } from "../lib/proc.ts";
import { socketAnswers } from "../lib/socket_check.ts";
import { isErrno } from "../lib/errors.ts";

/** What is at a socket path. */
export type SocketState =
  | { kind: "absent" }
  | { kind: "stale" }
  | { kind: "live"; pids: number[] };

/** Finds out whether something listens on `path`, and which of our processes. */
export async function inspectSocketPath(path: string): Promise<SocketState> {
  try {
    await fs.lstat(path);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return { kind: "absent" };
    throw err;
  }
  const inodes = await listenerInodes(path);
  const pids = inodes.size > 0 ? await holders(inodes) : [];
  if (pids.length > 0) return { kind: "live", pids };
  // Someone we cannot see may still listen (another user's process): ask the socket itself.
  const answers = await socketAnswers(path, 1000);
  return answers ? { kind: "live", pids: [] } : { kind: "stale" };
}

/** Inodes of listening sockets bound to `path`, from /proc/net/unix. */
export async function listenerInodes(path: string): Promise<Set<number>> {
  const text = await readProcFile("/proc/net/unix").catch(() => "");
  const inodes = new Set<number>();
  for (const line of text.split("\n").slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f.slice(7).join(" ") !== path) continue;
    const flags = parseInt(f[3], 16);
    if (flags & 0x10000 /* __SO_ACCEPTCON: listening */) inodes.add(Number(f[6]));
  }
  return inodes;
}

/** Pids of the processes we may inspect that hold one of `inodes`. */
async function holders(inodes: Set<number>): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await fs.readdir("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = await fs.readdir(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      const target = await fs.readlink(`/proc/${entry}/fd/${fd}`).catch(() => "");
      const m = /^socket:\[([0-9]+)\]$/.exec(target);
      if (m !== null && inodes.has(Number(m[1]))) {
        pids.push(Number(entry));
        break;
      }
    }
  }
  return pids;
}
