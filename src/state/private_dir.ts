/**
 * Private directories (mode 0700, owned by the current user), checked so that
 * a directory someone else planted in /tmp is never used.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConductorError, isErrno } from "../lib/errors.ts";

/** Creates `path` (and parents) if missing, and checks that it is a directory of this user with mode 0700. */
export async function ensurePrivateDir(path: string): Promise<string> {
  await fs.mkdir(path, { recursive: true, mode: 0o700 }).catch((err) => { if (!isErrno(err, "EEXIST")) throw err; });
  const st = await fs.lstat(path);
  const uid = process.geteuid!();
  if (!st.isDirectory() || st.uid !== uid) {
    throw new ConductorError("CONDUCTOR_ERR_STATE",
      `Cannot use ${path}: it must be a directory owned by you (uid ${uid}), but it is ${st.isDirectory() ? `owned by uid ${st.uid}` : "not a directory"}; remove it or choose another location`);
  }
  if ((st.mode & 0o777) !== 0o700) await fs.chmod(path, 0o700);
  return path;
}

/**
 * The user's private runtime directory for conductor: `$XDG_RUNTIME_DIR/conductor`
 * when that is set, else `/tmp/conductor-UID`. Holds SSH control sockets.
 */
export async function runtimeDir(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg !== undefined && xdg.startsWith("/")) {
    try {
      const st = await fs.stat(xdg);
      if (st.isDirectory() && st.uid === process.geteuid!()) return ensurePrivateDir(join(xdg, "conductor"));
    } catch { /* not usable: fall back */ }
  }
  return ensurePrivateDir(join(tmpdir(), `conductor-${process.geteuid!()}`));
}

/**
 * Checks that `path` (`what`, for the message) is a directory of this
 * process's user that no other user may write to: one that others could
 * write to would let them plant what the gateway then trusts.
 */
export async function checkOwnDirectory(path: string, what: string): Promise<void> {
  const st = await fs.lstat(path);
  const uid = process.geteuid!();
  if (!st.isDirectory() || st.uid !== uid) {
    throw new ConductorError("CONDUCTOR_ERR_RUNTIME_DIR",
      `Cannot use ${path} as ${what}: it must be a directory owned by the gateway's user (uid ${uid}), but it is ${st.isDirectory() ? `owned by uid ${st.uid}` : "not a directory"}; chown it or remove it`);
  }
  if ((st.mode & 0o022) !== 0) {
    throw new ConductorError("CONDUCTOR_ERR_RUNTIME_DIR",
      `Cannot use ${path} as ${what}: other users may write to it (mode 0${(st.mode & 0o7777).toString(8)}), so they could plant files there; chmod go-w ${path}`);
  }
}
