/**
 * Lock files that work on NFS home directories (no flock): created with
 * O_EXCL, holding the owner's pid, host and process start time, recovered
 * when stale, waited for with a bound.
 *
 * A lock is stale when its owner is on this host and no longer runs (or its
 * pid now belongs to a process started at another time), or, for a lock from
 * another host, when it is older than `staleMs`.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { promises as fs, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { ConductorError, isErrno } from "../lib/errors.ts";

/** What a lock file holds. */
export interface LockOwner {
  pid: number;
  host: string;
  /** Start time of the owning process (clock ticks since boot, from /proc), or 0 when unknown. */
  started: number;
  /** Random id of this acquisition. */
  id: string;
}

/** Options of {@link acquireLock}. */
export interface LockOptions {
  /** How long to wait for a held lock, in ms. Default 10 s. */
  timeoutMs?: number;
  /** Age after which a lock from another host counts as stale, in ms. Default 60 s. */
  staleMs?: number;
}

/** A held lock. */
export interface Lock {
  readonly path: string;
  /** Removes the lock file if it is still this acquisition's. Safe to call twice. */
  release(): Promise<void>;
}

const HOST = hostname();

/** Fields 3 onwards of /proc/PID/stat (state first), or null when it cannot be read. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces, so count from its closing parenthesis.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** Start time of process `pid` from /proc/PID/stat, or 0 when it cannot be read. */
export function processStartTime(pid: number): number {
  return Number(statFields(pid)?.[19]) || 0;
}

/** True when process `pid` runs on this host (and, with `started`, is the same process); a zombie has ended. */
export function processAlive(pid: number, started = 0): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (isErrno(err, "ESRCH")) return false;
    // EPERM: it exists but belongs to someone else.
  }
  const fields = statFields(pid);
  if (fields?.[0] === "Z") return false;
  return started === 0 || fields === null || Number(fields[19]) === started;
}

/** Takes the lock at `path`, waiting (bounded) for another holder and recovering stale locks. */
export async function acquireLock(path: string, options: LockOptions = {}): Promise<Lock> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const staleMs = options.staleMs ?? 60_000;
  const owner: LockOwner = { pid: process.pid, host: HOST, started: processStartTime(process.pid), id: randomBytes(8).toString("hex") };
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    try {
      const handle = await fs.open(path, "wx", 0o600);
      try {
        await handle.writeFile(JSON.stringify(owner) + "\n");
      } finally {
        await handle.close();
      }
      return { path, release: () => releaseLock(path, owner.id) };
    } catch (err) {
      if (!isErrno(err, "EEXIST")) {
        throw new ConductorError("CONDUCTOR_ERR_LOCK", `Cannot create lock ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (await removeIfStale(path, staleMs)) continue;
    if (Date.now() >= deadline) {
      const holder = await readOwner(path);
      throw new ConductorError("CONDUCTOR_ERR_LOCK",
        `Cannot take lock ${path}: held by ${holder ? `pid ${holder.pid} on ${holder.host}` : "another process"} for more than ${Math.round(timeoutMs / 1000)} s; if that process is gone, remove the file`);
    }
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
    delay = Math.min(delay * 2, 200);
  }
}

/** Runs `fn` while holding the lock at `path`. */
export async function withLock<T>(path: string, fn: () => Promise<T>, options?: LockOptions): Promise<T> {
  const lock = await acquireLock(path, options);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

async function readOwner(path: string): Promise<LockOwner | null> {
  try {
    const owner = JSON.parse(await fs.readFile(path, "utf8")) as LockOwner;
    return typeof owner.pid === "number" && typeof owner.host === "string" ? owner : null;
  } catch {
    return null;
  }
}

/** Removes the lock at `path` when it is stale; true when it did (or the lock vanished). */
async function removeIfStale(path: string, staleMs: number): Promise<boolean> {
  let st;
  try {
    st = await fs.stat(path);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return true;
    throw err;
  }
  const owner = await readOwner(path);
  let stale: boolean;
  if (owner === null) {
    // Unreadable or half-written: a crash between create and write, or a writer right now.
    stale = Date.now() - st.mtimeMs > Math.min(staleMs, 5_000);
  } else if (owner.host === HOST) {
    stale = !processAlive(owner.pid, owner.started);
  } else {
    stale = Date.now() - st.mtimeMs > staleMs;
  }
  if (!stale) return false;
  // Remove it only if it is still the file we judged.
  try {
    const again = await fs.stat(path);
    if (again.ino !== st.ino || again.mtimeMs !== st.mtimeMs) return false;
    await fs.unlink(path);
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw err;
  }
  return true;
}

async function releaseLock(path: string, id: string): Promise<void> {
  const owner = await readOwner(path);
  if (owner === null || owner.id !== id) return;
  await fs.unlink(path).catch((err) => { if (!isErrno(err, "ENOENT")) throw err; });
}
