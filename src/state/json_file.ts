/**
 * JSON files that are always either the old or the new version: written to
 * a temporary file in the same directory, flushed, renamed over the old one,
 * and the directory flushed. Files that cannot be parsed are reported with
 * their path and set aside, never silently replaced. Updates go through a
 * lock file (see lock.ts), so concurrent writers lose nothing, on NFS too.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { basename, dirname, join } from "node:path";
import { ConductorError, isErrno, messageOf } from "../lib/errors.ts";
import { withLock, type LockOptions } from "./lock.ts";

/** Writes `value` as JSON to `path` atomically, with `mode` (default 0600). */
export async function writeJsonAtomic(path: string, value: unknown, mode = 0o600): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n", mode);
}

/** Writes `data` to `path` atomically (a hidden temporary file renamed over it), with `mode`. */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  let handle;
  try {
    handle = await fs.open(temp, "wx", mode);
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle?.close().catch(() => {});
    await fs.rm(temp, { force: true }).catch(() => {});
    throw new ConductorError("CONDUCTOR_ERR_STATE", `Cannot write ${path}: ${messageOf(err)}; the previous version is unchanged`, { cause: err });
  }
  await handle.close();
  try {
    await fs.rename(temp, path);
  } catch (err) {
    await fs.rm(temp, { force: true }).catch(() => {});
    throw new ConductorError("CONDUCTOR_ERR_STATE", `Cannot replace ${path}: ${messageOf(err)}; the previous version is unchanged`, { cause: err });
  }
  await syncDir(dir);
}

/** Flushes a directory's entries (the rename) to disk; file systems that cannot are tolerated. */
async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await fs.open(dir, "r");
    await handle.sync();
  } catch (err) {
    if (!isErrno(err, "EINVAL") && !isErrno(err, "EISDIR") && !isErrno(err, "EBADF")) throw err;
  } finally {
    await handle?.close().catch(() => {});
  }
}

/**
 * Reads JSON from `path`; `undefined` when the file does not exist. A file
 * that does not parse is moved aside to `<path>.corrupt-<time>` and reported
 * as `CONDUCTOR_ERR_STATE` naming both paths.
 */
export async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(path, "utf8");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return undefined;
    throw new ConductorError("CONDUCTOR_ERR_STATE", `Cannot read ${path}: ${messageOf(err)}`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    const aside = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    await fs.rename(path, aside).catch(() => {});
    throw new ConductorError("CONDUCTOR_ERR_STATE",
      `Cannot parse ${path} (${messageOf(err)}); it was moved to ${aside} for inspection and a fresh file will be started`, { cause: err });
  }
}

/**
 * Reads the JSON at `path` (or `initial()` when it is missing or corrupt),
 * passes it to `change`, and writes the result atomically, all under the lock
 * `path + ".lock"`. `onCorrupt` hears of a file that was set aside.
 */
export async function updateJson<T>(path: string, initial: () => T, change: (value: T) => T | Promise<T>,
  options: LockOptions & { onCorrupt?: (err: ConductorError) => void; mode?: number } = {}): Promise<T> {
  return withLock(path + ".lock", async () => {
    let current: T;
    try {
      const value = await readJson(path);
      current = value === undefined ? initial() : value as T;
    } catch (err) {
      if (!(err instanceof ConductorError)) throw err;
      options.onCorrupt?.(err);
      current = initial();
    }
    const next = await change(current);
    await writeJsonAtomic(path, next, options.mode);
    return next;
  }, options);
}
