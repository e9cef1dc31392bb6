/**
 * Making room in the control socket's pool of connections that have not sent
 * their config, so that one user's flood cannot lock the others out. When the
 * pool is full, a connection gives way: first the oldest that has placed
 * nothing in its directory for a while (a client setting up places its socket
 * within seconds); else, among those whose socket shows their owner (Node has
 * no SO_PEERCRED), the oldest of the user holding the most, if that is more
 * than one. A newcomer is refused only when neither exists.
 *
 * @module
 */
import { lstatSync } from "node:fs";
import { join } from "node:path";

/** A connection waiting for its config, as the pool sees it. */
export interface PendingClient {
  /** When it connected (ms since the epoch). */
  readonly openedAt: number;
  /** Its client directory, once assigned. */
  readonly directory: string | null;
}

/** How long a new connection may hold its slot with nothing placed before it can be made to give way, in ms. */
export const SETUP_GRACE_MS = 2000;

/**
 * The owner (uid) of the socket the client placed in `directory`, or null
 * when none is there yet, or what is there could be someone else's (a hard
 * link, which registration refuses too, or not a socket).
 */
export function placedBy(directory: string): number | null {
  try {
    const st = lstatSync(join(directory, "socket"));
    return st.isSocket() && st.nlink === 1 ? st.uid : null;
  } catch {
    return null;
  }
}

/**
 * The connection to close to make room, oldest first, or null when none
 * should give way. `pending` is in order of connection.
 */
export function pickToGiveWay<T extends PendingClient>(pending: Iterable<T>, now: number, owner: (directory: string) => number | null = placedBy): T | null {
  const byUser = new Map<number, T[]>();
  for (const client of pending) {
    const uid = client.directory === null ? null : owner(client.directory);
    if (uid === null) {
      if (now - client.openedAt >= SETUP_GRACE_MS) return client;
      continue;
    }
    const list = byUser.get(uid);
    if (list === undefined) byUser.set(uid, [client]);
    else list.push(client);
  }
  let most: T[] = [];
  for (const list of byUser.values()) if (list.length > most.length) most = list;
  return most.length > 1 ? most[0] : null;
}
