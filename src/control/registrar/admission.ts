/**
 * Who registers: the kernel says it, not the message. A client places its
 * forwarded socket (or, to list, a file `whoami`) in the fresh directory the
 * banner gave it; the gateway locks the directory, and the owner of that
 * entry is the registering user. Node has no SO_PEERCRED, so identity rests
 * on that file's ownership: a socket (or file) of one link that other users
 * cannot reach, owned by a user whose name is fit for a host name.
 *
 * The directory was open to every user until it was locked, and its name is
 * not a secret (the socket's path shows in /proc/net/unix): what other users
 * placed there is ignored, so that nobody can break another's registration.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { ConductorError } from "../../lib/errors.ts";
import { inspectRouteSocket } from "../../lib/socket_check.ts";
import { lookupAccount } from "../../lib/users.ts";
import { lockClientDir, SOCKET_NAME } from "../directories.ts";
import { checkUserName } from "../naming.ts";

/** Name of the file a client places in its directory to say who it is, for requests other than a registration. */
export const WHOAMI_NAME = "whoami";

/** Whose socket a client placed in its directory: the user (lowercase), the uid and the path. */
export interface SocketOwner {
  user: string;
  uid: number;
  socketPath: string;
}

/**
 * Locks the client directory `dir` and checks the socket in it: a socket of
 * one link that other users cannot reach, owned by a user whose name is fit
 * for a host name, and nothing else of that user's beside it. Throws a
 * `ConductorError` with the reason.
 */
export async function admitSocket(dir: string): Promise<SocketOwner> {
  // Lock first: from here on nobody but the gateway can swap the socket.
  await lockClientDir(dir);
  const socketPath = join(dir, SOCKET_NAME);
  const facts = await inspectRouteSocket(socketPath);
  await checkNothingElse(dir, SOCKET_NAME, facts.uid, "Cannot register route");
  const user = (await lookupAccount(facts.uid)).name.toLowerCase();
  checkUserName(user);
  return { user, uid: facts.uid, socketPath };
}

/**
 * Finds out who a client is from the owner of the file `whoami` it placed in
 * its directory (locked first): a regular file with one link. Returns the
 * lowercase user name; throws a `ConductorError` with the reason.
 */
export async function identify(dir: string): Promise<string> {
  await lockClientDir(dir);
  const path = join(dir, WHOAMI_NAME);
  let st;
  try {
    st = await fs.lstat(path);
  } catch {
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_MISSING", `Cannot tell who you are: create ${path} first (ssh gateway touch ${path})`);
  }
  if (!st.isFile() || st.nlink !== 1) {
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_TYPE", `Cannot tell who you are: ${path} must be a regular file with one link`);
  }
  await checkNothingElse(dir, WHOAMI_NAME, st.uid, "Cannot tell who you are");
  const user = (await lookupAccount(st.uid)).name.toLowerCase();
  checkUserName(user);
  return user;
}

/**
 * Refuses a directory where user `uid` placed more than `name`; entries of
 * other users are ignored (they could write there until it was locked, and
 * the gateway removes them with the directory).
 */
async function checkNothingElse(dir: string, name: string, uid: number, action: string): Promise<void> {
  const extra: string[] = [];
  for (const entry of await fs.readdir(dir)) {
    if (entry === name) continue;
    const st = await fs.lstat(join(dir, entry)).catch(() => null);
    if (st !== null && st.uid === uid) extra.push(JSON.stringify(entry));
  }
  if (extra.length > 0) {
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_TYPE", `${action}: ${dir} holds ${extra.join(", ")} of yours besides the ${name === SOCKET_NAME ? "socket" : name}; place only the forwarded socket there`);
  }
}
