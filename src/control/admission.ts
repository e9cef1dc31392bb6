/**
 * The checks a registration passes before its route exists: the client's
 * directory is locked and holds only the socket, the socket is a socket of
 * one link that other users cannot reach, its owner (the registering user,
 * as the kernel says) has a name fit for a host name and is not taking a
 * host that reads as another user's, the per-user limit holds, and the
 * socket answers.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { ConductorError } from "../lib/errors.ts";
import { lookupAccount } from "../lib/users.ts";
import type { Route, RouteTable } from "../gateway/routes.ts";
import { checkClientDirContents, lockClientDir, SOCKET_NAME } from "./directories.ts";
import { checkHostOwnership, checkUserName } from "./naming.ts";
import type { RegisterRequest } from "./protocol.ts";
import { inspectRouteSocket, probeSocket, socketAnswers } from "../lib/socket_check.ts";

/** What a registration that passed the checks is about. */
export interface Admission {
  key: string;
  name: string;
  user: string;
  uid: number;
  socketPath: string;
  directory: string;
  authHash: Buffer;
  /** The route this one replaces (the same run coming back, or a route waiting for its client), if any. */
  replaces: Route | undefined;
}

/** Name of the file a client places in its directory to say who it is, for requests other than a registration. */
export const WHOAMI_NAME = "whoami";

/**
 * Finds out who a client is from the owner of the file `whoami` it placed in
 * its directory (locked first): a regular file with one link. Returns the
 * lowercase user name; throws a `ConductorError` with the reason.
 */
export async function identify(dir: string): Promise<string> {
  await lockClientDir(dir);
  const path = join(dir, WHOAMI_NAME);
  const entries = (await fs.readdir(dir)).filter((n) => n !== WHOAMI_NAME);
  if (entries.length > 0) throw new ConductorError("CONDUCTOR_ERR_SOCKET_TYPE", `Cannot tell who you are: ${dir} holds more than ${WHOAMI_NAME}`);
  let st;
  try {
    st = await fs.lstat(path);
  } catch {
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_MISSING", `Cannot tell who you are: create ${path} first (ssh gateway touch ${path})`);
  }
  if (!st.isFile() || st.nlink !== 1) {
    throw new ConductorError("CONDUCTOR_ERR_SOCKET_TYPE", `Cannot tell who you are: ${path} must be a regular file with one link`);
  }
  const user = (await lookupAccount(st.uid)).name.toLowerCase();
  checkUserName(user);
  return user;
}

/** Whose socket a client placed in its directory: the user (lowercase), the uid and the path. */
export interface SocketOwner {
  user: string;
  uid: number;
  socketPath: string;
}

/**
 * Locks the client directory `dir` and checks the socket in it: alone, a
 * socket of one link that other users cannot reach, owned by a user whose
 * name is fit for a host name. Throws a `ConductorError` with the reason.
 */
export async function admitSocket(dir: string): Promise<SocketOwner> {
  // Lock first: from here on nobody but the gateway can swap the socket.
  await lockClientDir(dir);
  await checkClientDirContents(dir);
  const socketPath = join(dir, SOCKET_NAME);
  const facts = await inspectRouteSocket(socketPath);
  const user = (await lookupAccount(facts.uid)).name.toLowerCase();
  checkUserName(user);
  return { user, uid: facts.uid, socketPath };
}

/** Checks a registration of the client whose directory is `dir`; throws a `ConductorError` with the reason. */
export async function admit(dir: string, request: RegisterRequest, routes: RouteTable, maxPerUser: number): Promise<Admission> {
  const { user, uid, socketPath } = await admitSocket(dir);
  await checkHostOwnership(request.key, user, routes.patterns);
  await probeSocket(socketPath);
  const authHash = Buffer.from(request.auth, "hex");
  const existing = routes.get(user, request.key);
  // Another token is another run: it may only take a route that waits for a client that is gone (its socket is silent).
  if (existing !== undefined && !existing.authHash.equals(authHash) && (!existing.waiting || await socketAnswers(existing.socketPath, 2000))) {
    throw new ConductorError("CONDUCTOR_ERR_KEY_TAKEN",
      `Cannot register route: user ${user} already has a live route with key '${request.key}' from another conductor run; stop that one, or use another key (-k), or run with the same CONDUCTOR_TOKEN to take it over`);
  }
  if (existing === undefined && routes.countOf(user) >= maxPerUser) {
    throw new ConductorError("CONDUCTOR_ERR_ROUTE_LIMIT",
      `Cannot register route: user ${user} already holds ${maxPerUser} routes, the limit of this gateway; stop some (conductor list) first`);
  }
  return { key: request.key, name: request.name, user, uid, socketPath, directory: dir, authHash, replaces: existing };
}
