/**
 * Checks a client's forwarded socket before a route points at it.
 *
 * The kernel, not the message, says who registers: the owner of the socket the
 * client placed in its fresh directory. Node has no SO_PEERCRED, so identity
 * rests on that file's ownership; the directory is locked (0770, owned by the
 * gateway) before these checks, so the file cannot be swapped afterwards.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { connect } from "node:net";
import { ConductorError, isErrno } from "./errors.ts";

/** What the checks learned about a route socket. */
export interface SocketFacts {
  /** Owner of the socket file: the registering user. */
  uid: number;
  /** Inode number, to tell a replaced socket from the checked one. */
  ino: number;
}

/**
 * Checks that `path` is a socket (not a symlink), has exactly one link and is
 * not accessible to other users; throws a `ConductorError` naming the path
 * and the fix otherwise.
 */
export async function inspectRouteSocket(path: string): Promise<SocketFacts> {
  let st;
  try {
    st = await fs.lstat(path);
  } catch (err) {
    if (isErrno(err, "ENOENT")) {
      throw new ConductorError("CONDUCTOR_ERR_SOCKET_MISSING",
        `Cannot register route: no socket at ${path}; forward the app socket there before sending the config (ssh -O forward -R ${path}:app.sock)`);
    }
    throw err;
  }
  if (!st.isSocket()) {
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_TYPE",
      `Cannot register route: ${path} is a ${kindOf(st)}, not a socket; forward the app socket itself there`);
  }
  if (st.nlink !== 1) {
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_LINKS",
      `Cannot register route: ${path} has ${st.nlink} hard links; a route socket must have exactly one`);
  }
  const mode = st.mode & 0o777;
  if (mode & 0o007) {
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_MODE",
      `Cannot register route: ${path} is accessible to all users (mode ${octal(mode)}); chmod 660 it, or set StreamLocalBindMask 0117 in the gateway's sshd_config`);
  }
  return { uid: st.uid, ino: st.ino };
}

/** True when something accepts a connection on `path` within `timeoutMs`. */
export function socketAnswers(path: string, timeoutMs: number): Promise<boolean> {
  return probeSocket(path, timeoutMs).then(() => true, () => false);
}

/** Connects to a UNIX socket and closes again; throws `CONDUCTOR_ERR_SOCKET_UNREACHABLE` when it cannot. */
export function probeSocket(path: string, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const timer = setTimeout(() => fail(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })), timeoutMs);
    const fail = (err: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      socket.destroy();
      const hint = err.code === "EACCES"
        ? "; the gateway connects through the socket's group: chmod 660 it (the directory is setgid, so the group is the gateway's)"
        : err.code === "ECONNREFUSED" ? "; nothing listens on it" : "";
      reject(new ConductorError("CONDUCTOR_ERR_SOCKET_UNREACHABLE",
        `Cannot register route: cannot connect to ${path} (${err.code ?? err.message})${hint}`, { cause: err }));
    };
    socket.once("error", fail);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    });
  });
}

function octal(mode: number): string {
  return "0" + mode.toString(8).padStart(3, "0");
}

/**
 * Makes way for a listening socket at `path`: removes a leftover socket file
 * nothing answers on, and refuses a live one or a file that is not a socket.
 * `option` names the setting that chose the path, for the message.
 */
export async function removeStaleSocket(path: string, option: string): Promise<void> {
  let st;
  try {
    st = await fs.lstat(path);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_TYPE",
      `Cannot listen on ${path}: a ${kindOf(st)} is in the way; remove it or choose another ${option}`);
  }
  const live = await socketAnswers(path, 1000);
  if (live) {
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_IN_USE",
      `Cannot listen on ${path}: another program is listening there; stop it or choose another ${option}`);
  }
  await fs.rm(path, { force: true });
}

/** A word for a file's type, for messages. */
export function kindOf(st: { isSymbolicLink(): boolean; isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isFile(): boolean }): string {
  if (st.isSymbolicLink()) return "symbolic link";
  if (st.isDirectory()) return "directory";
  if (st.isFIFO()) return "FIFO";
  if (st.isSocket()) return "socket";
  if (st.isFile()) return "regular file";
  return "special file";
}
