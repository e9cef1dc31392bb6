/**
 * The sockets directory and the per-client directories in it.
 *
 * `<runtime>/sockets` is 0771: users may enter it but not list it. Each client
 * gets a fresh directory with a non-guessable name, mode 3777 (setgid, sticky,
 * world-writable) so that the user's sshd can place the forwarded socket there
 * and the socket's group becomes the gateway's; once the client sends its
 * config the directory is locked to 0770 before the socket is examined.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { ConductorError, isErrno, messageOf } from "../lib/errors.ts";
import { kindOf } from "../lib/socket_check.ts";

/** Name of the socket a client places in its directory. */
export const SOCKET_NAME = "socket";

const SOCKETS_DIR_MODE = 0o771;
const CLIENT_DIR_OPEN_MODE = 0o3777;
const CLIENT_DIR_LOCKED_MODE = 0o770;

/**
 * Creates (if needed) `<runtimeDir>/sockets` with mode 0771 and checks that it belongs to this process's user.
 * Returns its path.
 */
export async function prepareSocketsDir(runtimeDir: string): Promise<string> {
  const dir = join(runtimeDir, "sockets");
  try {
    await fs.mkdir(runtimeDir, { recursive: true, mode: 0o755 });
    await fs.mkdir(dir, { mode: SOCKETS_DIR_MODE }).catch((err) => { if (!isErrno(err, "EEXIST")) throw err; });
  } catch (err) {
    throw new ConductorError("CONDUCTOR_ERR_RUNTIME_DIR",
      `Cannot use the runtime directory ${runtimeDir}: ${messageOf(err)}; create it for the gateway's user or choose another with --runtime-dir`, { cause: err });
  }
  const st = await fs.lstat(dir);
  const uid = process.geteuid?.() ?? st.uid;
  if (!st.isDirectory() || st.uid !== uid) {
    throw new ConductorError("CONDUCTOR_ERR_RUNTIME_DIR",
      `Cannot use ${dir}: it must be a directory owned by uid ${uid} (the gateway's user), not ${st.isDirectory() ? "uid " + st.uid : "a " + kindOf(st)}; remove it and start again`);
  }
  await fs.chmod(dir, SOCKETS_DIR_MODE);
  return dir;
}

/** Creates a fresh client directory under `socketsDir`, open for the client to place its socket (mode 3777). */
export async function createClientDir(socketsDir: string): Promise<string> {
  const dir = join(socketsDir, randomBytes(16).toString("hex"));
  await fs.mkdir(dir, { mode: 0o700 });
  await fs.chmod(dir, CLIENT_DIR_OPEN_MODE);
  return dir;
}

/** Locks a client directory (0770): from now on only the gateway's user and group may change or enter it. */
export async function lockClientDir(dir: string): Promise<void> {
  await fs.chmod(dir, CLIENT_DIR_LOCKED_MODE);
}

/**
 * Removes a client directory and what the client placed in it; a missing
 * directory is fine. The directory is locked first, so that its entries can
 * no longer change; the gateway then unlinks them one by one and never walks
 * into a directory a user made, whose content its owner could swap for a
 * symbolic link to the gateway's own files while it is being removed. A
 * user's directory that is not empty is left, locked, and reported.
 */
export async function removeClientDir(dir: string): Promise<void> {
  try {
    await fs.chmod(dir, 0o700);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return;
    throw err;
  }
  const left: string[] = [];
  for (const name of await fs.readdir(dir)) {
    const path = join(dir, name);
    try {
      const st = await fs.lstat(path);
      if (!st.isDirectory()) await fs.unlink(path);
      else if (!await removeIfEmpty(path)) left.push(`${JSON.stringify(name)} (a directory of uid ${st.uid} with content)`);
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
    }
  }
  if (left.length > 0) {
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_TYPE",
      `Cannot remove ${dir}: it holds ${left.join(", ")}, which the gateway does not walk into; the directory is locked (0700), remove it as root`);
  }
  await fs.rmdir(dir);
}

/** Removes an empty directory; false when it is not empty. */
async function removeIfEmpty(path: string): Promise<boolean> {
  try {
    await fs.rmdir(path);
    return true;
  } catch (err) {
    if (isErrno(err, "ENOTEMPTY") || isErrno(err, "EEXIST")) return false;
    throw err;
  }
}

/**
 * Removes every entry of `socketsDir` whose path is not in `keep`. Returns the
 * paths removed and the errors of those that could not be (they are locked
 * and left for the admin).
 */
export async function sweepClientDirs(socketsDir: string, keep: ReadonlySet<string>): Promise<{ removed: string[]; failed: Array<{ path: string; error: unknown }> }> {
  const removed: string[] = [];
  const failed: Array<{ path: string; error: unknown }> = [];
  for (const name of await fs.readdir(socketsDir)) {
    const path = join(socketsDir, name);
    if (keep.has(path)) continue;
    try {
      await removeClientDir(path);
      removed.push(path);
    } catch (error) {
      failed.push({ path, error });
    }
  }
  return { removed, failed };
}

