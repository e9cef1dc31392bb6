/**
 * Routes that outlive a restart of conductor-server. At start, every stored
 * route whose socket is still the user's and still answers is published
 * again at once, without a control connection, and waits for its client,
 * which saw its control connection end, to register again and replace it
 * (another run of the user may take the key once the socket stops
 * answering). A waiting route whose socket has not answered for 30 seconds
 * is dropped (its client is gone).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { lookupAccount } from "../lib/users.ts";
import { RoutePool, type PoolOptions } from "../gateway/pool.ts";
import { RECONNECT_GRACE_MS, type Route, type RouteTable } from "../gateway/routes.ts";
import type { Stats } from "../gateway/stats.ts";
import { everySecond } from "../lib/sweeper.ts";
import type { GatewayState, RouteRecord } from "../state/gateway_state.ts";
import { removeClientDir, SOCKET_NAME } from "./directories.ts";
import { inspectRouteSocket, probeSocket, socketAnswers } from "../lib/socket_check.ts";

/** How often waiting routes (and streams) are probed, in ms. */
export const PROBE_EVERY_MS = 5_000;
/** How long a waiting route's (or stream's) socket may stay silent before it is dropped, in ms. */
export const SILENT_GRACE_MS = 30_000;

/** What publishing a route needs: the table, counters, log, pool settings, state and the sockets directory. */
export interface RouteContext {
  routes: RouteTable;
  stats: Stats;
  logger: Logger;
  pool: PoolOptions;
  state: GatewayState;
  socketsDir: string;
}

/** The routes waiting for their client. */
export class WaitingRoutes {
  #ctx: RouteContext;
  /** Each waiting route, with the time its socket started failing probes (0 while it answers). */
  #waiting = new Map<Route, number>();
  #stop: () => void;
  #lastProbe = Date.now();

  constructor(ctx: RouteContext) {
    this.#ctx = ctx;
    this.#stop = everySecond((now) => {
      if (now - this.#lastProbe < PROBE_EVERY_MS || this.#waiting.size === 0) return;
      this.#lastProbe = now;
      void this.#probeAll();
    });
  }

  /** Directories of the waiting routes (kept when the sockets directory is swept). */
  directories(): Set<string> {
    return new Set([...this.#waiting.keys()].map((r) => r.directory));
  }

  /**
   * Loads the stored routes and publishes those whose socket is still the
   * user's and answers; writes back what was kept. Returns the number adopted.
   */
  async adopt(): Promise<number> {
    const { state, logger } = this.#ctx;
    let adopted = 0;
    for (const file of await state.load()) {
      const kept: RouteRecord[] = [];
      for (const record of file.routes) {
        const why = await this.#check(file.user, record);
        if (why !== null) {
          logger.info("stored route dropped at start", { key: record.key, user: file.user, reason: why });
          // Its client may be in the middle of moving the route: until it is back, try again rather than not found.
          this.#ctx.routes.markGone(this.#ctx.routes.hostsOf(record.key, file.user), RECONNECT_GRACE_MS);
          await removeClientDir(record.directory).catch(() => {});
          continue;
        }
        try {
          this.#publish(file.user, record);
          kept.push(record);
          adopted++;
        } catch (err) {
          logger.warn("stored route not published", { key: record.key, user: file.user, reason: messageOf(err) });
        }
      }
      if (kept.length !== file.routes.length) state.setRoutes(file.user, kept);
    }
    await state.flush();
    if (adopted > 0) logger.info("routes kept across the restart", { count: adopted });
    return adopted;
  }

  /** Stops probing. */
  close(): void {
    this.#stop();
  }

  /** Why a stored route cannot be published again, or null when it can. */
  async #check(user: string, record: RouteRecord): Promise<string | null> {
    if (dirname(record.directory) !== this.#ctx.socketsDir || record.socket !== join(record.directory, SOCKET_NAME)) {
      return "its socket is not in this gateway's sockets directory";
    }
    try {
      const facts = await inspectRouteSocket(record.socket);
      if (facts.uid !== record.uid) return "its socket changed owner";
      if ((await lookupAccount(facts.uid)).name.toLowerCase() !== user) return "its owner has another name now";
      await probeSocket(record.socket, 2000);
      return null;
    } catch (err) {
      return messageOf(err);
    }
  }

  #publish(user: string, record: RouteRecord): void {
    const { routes, stats, pool } = this.#ctx;
    const route: Route = {
      key: record.key,
      user,
      name: record.name,
      uid: record.uid,
      socketPath: record.socket,
      directory: record.directory,
      authHash: Buffer.from(record.auth, "hex"),
      hosts: routes.hostsOf(record.key, user),
      created: Date.parse(record.created) || Date.now(),
      lastActivity: 0,
      pool: new RoutePool(record.socket, stats, pool),
      waiting: true,
      release: (reason) => this.#drop(route, reason, true),
    };
    routes.add(route);
    this.#waiting.set(route, 0);
  }

  /** Ends a waiting route: `replaced` by a new registration (the requests in progress finish), or its socket stayed silent. */
  #drop(route: Route, reason: string, replaced = false): void {
    if (!this.#waiting.delete(route)) return;
    const { routes, state, logger } = this.#ctx;
    // Replaced, it is no longer the table's; silent, its client may still come back: try again rather than not found.
    if (routes.remove(route, RECONNECT_GRACE_MS)) {
      state.removeRoute(route.user, route.key, route.directory);
      logger.info("route removed", { key: route.key, user: route.user, reason });
    }
    if (replaced) route.pool.retire();
    else route.pool.destroy();
    removeClientDir(route.directory).catch((err) => logger.warn("cannot remove client directory; it is locked, remove it as root", { dir: route.directory, error: err }));
  }

  async #probeAll(): Promise<void> {
    for (const route of [...this.#waiting.keys()]) {
      const alive = await socketAnswers(route.socketPath, 2000);
      const since = this.#waiting.get(route);
      if (since === undefined) continue;
      if (alive) this.#waiting.set(route, 0);
      else if (since === 0) this.#waiting.set(route, Date.now());
      else if (Date.now() - since > SILENT_GRACE_MS) this.#drop(route, "its socket stopped answering and the client did not come back");
    }
  }
}
