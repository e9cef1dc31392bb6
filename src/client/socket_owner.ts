/**
 * What is at a socket path, and who listens on it: /proc/net/unix names the
 * socket inodes bound to a path, /proc/PID/fd shows which of the user's own
 * processes hold them. Used before starting an app on a socket path that
 * already exists, and before removing one: only a socket nobody listens on
 * may go, never a file, a directory or anything else a user keeps there.
 *
 * @module
 */
import { promises as fs, type Stats } from "node:fs";
import { dirname } from "node:path";
import { readProcFile } from "../lib/proc.ts";
import { kindOf, socketAnswers } from "../lib/socket_check.ts";
import { ConductorError, isErrno } from "../lib/errors.ts";

/** What is at a socket path: nothing, a socket nobody listens on, a live one, or something that is not a socket. */
export type SocketState =
  | { kind: "absent" }
  | { kind: "stale" }
  | { kind: "live"; pids: number[] }
  | { kind: "other"; what: string };

/**
 * Finds out what is at `path`: whether something listens there, and which of
 * our processes. Throws a `ConductorError` that names the path when it
 * cannot be looked at (a directory the user cannot enter).
 */
export async function inspectSocketPath(path: string): Promise<SocketState> {
  let st: Stats;
  try {
    st = await fs.lstat(path);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return { kind: "absent" };
    const why = isErrno(err, "EACCES") ? `you cannot enter ${dirname(path)}` : isErrno(err, "ENOTDIR") ? `${dirname(path)} is not a directory` : String((err as NodeJS.ErrnoException).code ?? err);
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_TYPE", `Cannot use the socket path ${path}: ${why}; choose a path in a directory of yours`, { cause: err });
  }
  if (!st.isSocket()) return { kind: "other", what: `a ${kindOf(st)}` };
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

/**
 * Removes the socket `path` if nothing listens on it (any more); anything
 * else there is left alone. Throws a `ConductorError` naming the path when
 * a stale socket cannot be removed (another user's).
 */
export async function removeIfStale(path: string): Promise<void> {
  if ((await inspectSocketPath(path).catch(() => null))?.kind !== "stale") return;
  try {
    await fs.unlink(path);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return;
    const owner = await fs.lstat(path).then((st) => ` (it belongs to uid ${st.uid})`, () => "");
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_IN_USE", `Cannot remove the stale socket ${path}${owner}: ${(err as NodeJS.ErrnoException).code ?? err}; choose another path`, { cause: err });
  }
}
