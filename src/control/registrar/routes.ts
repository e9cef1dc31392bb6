/**
 * The registrar's web routes: publish (or replace) a route for a checked
 * socket, end it as its connection ends, take over the stored routes at a
 * restart, and list a user's routes. The route table answers browsers; the
 * state keeps the routes across restarts; this module keeps the two in step.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { RoutePool, type PoolOptions } from "../../gateway/pool.ts";
import { RECONNECT_GRACE_MS, type Route, type RouteTable } from "../../gateway/routes.ts";
import type { Stats } from "../../gateway/stats.ts";
import { ConductorError, messageOf } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { inspectRouteSocket, probeSocket } from "../../lib/socket_check.ts";
import { clock } from "../../lib/sweeper.ts";
import { lookupAccount } from "../../lib/users.ts";
import type { GatewayState, RouteRecord } from "../../state/gateway_state.ts";
import { SOCKET_NAME } from "../directories.ts";
import { checkHostOwnership } from "../naming.ts";
import type { Json, RegisterRequest } from "../protocol.ts";
import type { SocketOwner } from "./admission.ts";
import type { IdlePolicy } from "./idle.ts";
import { mayTake } from "./policy.ts";
import type { Ending, Holder, RoutePublication } from "./publication.ts";

/** What publishing routes needs: the table browsers are routed by, counters, log, pool settings, the state, the sockets directory. */
export interface RouteContext {
  routes: RouteTable;
  stats: Stats;
  logger: Logger;
  pool: PoolOptions;
  /** Where routes are stored; those stored there are taken over at start. */
  state: GatewayState;
  /** The sockets directory, holding the client directories. */
  socketsDir: string;
}

/** What the route side needs. */
export interface RouteSideOptions extends RouteContext {
  /** Most routes one user may hold. */
  maxPerUser: number;
  idle: IdlePolicy;
  /** Removes a client directory once `after` settled (tracked, so that a stop waits for it). */
  removeDirectory(dir: string, after?: Promise<unknown>): void;
}

/** The published routes. */
export class RouteSide {
  readonly #o: RouteSideOptions;
  readonly #publications = new Map<Route, RoutePublication>();

  constructor(options: RouteSideOptions) {
    this.#o = options;
  }

  /** Every published route. */
  all(): IterableIterator<RoutePublication> {
    return this.#publications.values();
  }

  /**
   * Publishes route `request.key` of `owner` for `holder`, in place of the
   * user's route of that key if the same run holds it (or a run whose client
   * is gone); throws a `ConductorError` that says why not.
   */
  async register(owner: SocketOwner, directory: string, request: RegisterRequest, holder: Holder): Promise<RoutePublication> {
    const { routes, state, logger, stats, pool, idle } = this.#o;
    const { user, uid, socketPath } = owner;
    await checkHostOwnership(request.key, user, routes.patterns);
    await probeSocket(socketPath);
    const existing = routes.get(user, request.key);
    const replaces = existing === undefined ? undefined : this.#publications.get(existing);
    if (replaces !== undefined && !await mayTake(replaces, request.auth)) {
      throw new ConductorError("CONDUCTOR_ERR_KEY_TAKEN",
        `Cannot register route: user ${user} already has a live route with key '${request.key}' from another conductor run; stop that one, or use another key (-k), or run with the same CONDUCTOR_TOKEN to take it over`);
    }
    if (replaces === undefined && routes.countOf(user) >= this.#o.maxPerUser) {
      throw new ConductorError("CONDUCTOR_ERR_ROUTE_LIMIT",
        `Cannot register route: user ${user} already holds ${this.#o.maxPerUser} routes, the limit of this gateway; stop some (conductor list) first`);
    }
    if (idle.refuses(user, request.key, request.auth, clock.now)) {
      throw new ConductorError("CONDUCTOR_ERR_IDLE_CLOSED",
        `Cannot register route ${request.key}: this run was closed for being idle past the gateway's --max-idle; start a new run (with a new token) to publish the app again`);
    }
    if (holder.gone) throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", "Cannot register route: the client went away");
    const sameRun = replaces?.auth === request.auth;
    const route: Route = {
      key: request.key,
      user,
      name: request.name,
      uid,
      socketPath,
      directory,
      authHash: Buffer.from(request.auth, "hex"),
      hosts: routes.hostsOf(request.key, user),
      created: Date.now(),
      // The same run coming back keeps the activity seen while it was away.
      lastActivity: sameRun ? replaces!.route.lastActivity : 0,
      pool: new RoutePool(socketPath, stats, pool),
    };
    routes.add(route, existing);
    const publication = this.#track(route, request.auth, holder);
    if (replaces !== undefined) {
      this.#replaced(replaces, sameRun ? "replaced by a new registration of the same run" : "taken by another run: its own client was gone");
      logger.info("route replaced", { key: route.key, user, sameRun });
    }
    state.saveRoute(user, {
      key: route.key, name: route.name, uid, socket: socketPath, directory,
      auth: request.auth, created: new Date(route.created).toISOString(),
    });
    logger.info("route added", { key: route.key, name: route.name, user, uid, hosts: route.hosts });
    return publication;
  }

  /** Ends `publication` as its connection ended (see {@link Ending}); `reason` is logged. Safe to call twice. */
  end(publication: RoutePublication, ending: Ending, reason: string): void {
    if (publication.ended) return;
    publication.ended = true;
    this.#publications.delete(publication.route);
    // A kept route stays published while the requests in progress finish; the next start takes it over.
    if (ending === "kept") return;
    const { route } = publication;
    // Without a goodbye the client may be reconnecting: its host answers 503, not 404, for a while.
    this.#unpublish(route, ending === "dropped" ? RECONNECT_GRACE_MS : 0, reason);
    route.pool.destroy();
    this.#o.removeDirectory(route.directory);
  }

  /** The routes of `user`, as `conductor list` shows them. */
  listOf(user: string, scheme: string, now: number): Array<{ [key: string]: Json }> {
    return [...this.#publications.keys()].filter((r) => r.user === user).map((r) => ({
      name: r.name, kind: "http", key: r.key, urls: [...r.hosts], scheme, created: new Date(r.created).toISOString(),
      lastActivity: r.lastActivity === 0 ? null : new Date(r.lastActivity).toISOString(),
      idle: Math.max(0, Math.floor((now - (r.lastActivity || r.created)) / 1000)),
    }));
  }

  /**
   * Loads the stored routes and publishes those whose socket is still the
   * user's and answers, each waiting for its client to register again;
   * writes back what was kept. Returns the number taken over.
   */
  async adopt(): Promise<number> {
    const { state, logger, routes } = this.#o;
    let adopted = 0;
    for (const file of await state.load()) {
      const kept: RouteRecord[] = [];
      for (const record of file.routes) {
        const why = await this.#unfit(file.user, record);
        if (why !== null) {
          logger.info("stored route dropped at start", { key: record.key, user: file.user, reason: why });
          // Its client may be in the middle of moving the route: until it is back, try again rather than not found.
          routes.markGone(routes.hostsOf(record.key, file.user), RECONNECT_GRACE_MS);
          this.#o.removeDirectory(record.directory);
          continue;
        }
        try {
          this.#publishStored(file.user, record);
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

  /** Why a stored route cannot be published again, or null when it can. */
  async #unfit(user: string, record: RouteRecord): Promise<string | null> {
    if (dirname(record.directory) !== this.#o.socketsDir || record.socket !== join(record.directory, SOCKET_NAME)) {
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

  /** Publishes a stored route, held by nobody until its client registers again. */
  #publishStored(user: string, record: RouteRecord): void {
    const { routes, stats, pool } = this.#o;
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
    };
    routes.add(route);
    this.#track(route, record.auth, null);
  }

  #track(route: Route, auth: string, holder: Holder | null): RoutePublication {
    const publication: RoutePublication = {
      kind: "http", user: route.user, directory: route.directory, socketPath: route.socketPath, auth,
      holder, silentSince: 0, ended: false, route, liveSince: clock.now, reported: 0,
    };
    this.#publications.set(route, publication);
    return publication;
  }

  /**
   * Ends a publication a new registration took the place of (the table
   * holds the new route already): the requests in progress on it finish,
   * its directory goes, and its holder closes.
   */
  #replaced(old: RoutePublication, reason: string): void {
    old.ended = true;
    this.#publications.delete(old.route);
    old.route.pool.retire();
    this.#o.state.removeRoute(old.user, old.route.key, old.directory);
    this.#o.removeDirectory(old.directory);
    old.holder?.replaced(reason);
  }

  /** Takes `route` out of the table (its hosts answer 503 for `graceMs`) and out of the state. */
  #unpublish(route: Route, graceMs: number, reason: string): void {
    if (this.#o.routes.remove(route, graceMs)) {
      this.#o.state.removeRoute(route.user, route.key, route.directory);
      this.#o.logger.info("route removed", { key: route.key, user: route.user, reason });
    }
  }
}
