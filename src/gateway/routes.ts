/**
 * The route table: which app socket serves which host name, and whose it is.
 *
 * Every route is indexed under each host name its key and user render to (one
 * per domain pattern), so a request's Host is found with one map lookup however
 * many routes exist, and under `user` + `key` for registration.
 *
 * @module
 */
import { ConductorError } from "../lib/errors.ts";
import type { DomainPattern } from "./domains.ts";
import type { RoutePool } from "./pool.ts";

/**
 * How long the host names of a route that went away without its client's
 * goodbye answer 503 (try again) instead of 404, in ms: the client is
 * probably reconnecting.
 */
export const RECONNECT_GRACE_MS = 60_000;

/** One published app. */
export interface Route {
  /** Route key, lowercase (the `{key}` of the patterns). */
  readonly key: string;
  /** Owner's user name, lowercase (the `{user}` of the patterns). */
  readonly user: string;
  /** Registry name of the service, unique among the user's live services. */
  readonly name: string;
  /** Owner's uid, from the socket file. */
  readonly uid: number;
  /** The forwarded app socket. */
  readonly socketPath: string;
  /** The client directory holding the socket. */
  readonly directory: string;
  /** blake2b-512 of the token, raw 64 bytes. */
  readonly authHash: Buffer;
  /** Host names, one per domain pattern, in pattern order. */
  readonly hosts: readonly string[];
  /** Creation time, ms since the epoch. */
  readonly created: number;
  /**
   * Time of the last browser activity, ms since the epoch (coarse), or 0
   * before any: an authorized request head, request body bytes, or websocket
   * data from the browser. Keep-alive traffic (pings, the app's own messages)
   * does not count. A run's new registration inherits it from the route it
   * replaces.
   */
  lastActivity: number;
  /** Keep-alive connections to the app socket. */
  readonly pool: RoutePool;
}

/** The set of routes, indexed by host name and by user and key. */
export class RouteTable {
  #patterns: readonly DomainPattern[];
  #byHost = new Map<string, Route>();
  #byUserKey = new Map<string, Route>();
  #byUserName = new Map<string, Route>();
  /** Host names of routes that dropped without a goodbye, until when they answer 503 (a reconnect is likely). */
  #gone = new Map<string, number>();
  #sweepGoneAt = 1024;
  #perUser = new Map<string, number>();

  constructor(patterns: readonly DomainPattern[]) {
    this.#patterns = patterns;
  }

  /** The domain patterns routes are published under. */
  get patterns(): readonly DomainPattern[] {
    return this.#patterns;
  }

  /** Sets the patterns; only while the table is empty (a default that depends on the port bound). */
  setPatterns(patterns: readonly DomainPattern[]): void {
    if (this.size > 0) throw new Error("Cannot change domain patterns: routes exist");
    this.#patterns = patterns;
  }

  /** Number of routes. */
  get size(): number {
    return this.#byUserKey.size;
  }

  /** The host names route `key` of `user` is published under. */
  hostsOf(key: string, user: string): string[] {
    return this.#patterns.map((p) => p.render(key, user));
  }

  /** The route serving `host` (normalized), also trying it without its port. */
  lookup(host: string): Route | undefined {
    const route = this.#byHost.get(host);
    if (route !== undefined) return route;
    const colon = host.lastIndexOf(":");
    return colon > 0 && !host.endsWith("]") ? this.#byHost.get(host.slice(0, colon)) : undefined;
  }

  /** True when `host` (without a route now) lost its route a moment ago without a goodbye: its client is probably reconnecting. */
  recentlyGone(host: string): boolean {
    if (this.#gone.size === 0) return false;
    const until = this.#gone.get(host) ?? this.#gone.get(host.slice(0, Math.max(0, host.lastIndexOf(":"))));
    return until !== undefined && until > Date.now();
  }

  /** Remembers `hosts` as recently gone for `graceMs` (see {@link recentlyGone}). */
  markGone(hosts: readonly string[], graceMs: number): void {
    if (graceMs <= 0) return;
    const now = Date.now();
    // Expired names go when the map has doubled since the last sweep: amortized constant time, bounded by what expires.
    if (this.#gone.size >= this.#sweepGoneAt) {
      for (const [host, until] of this.#gone) if (until <= now) this.#gone.delete(host);
      this.#sweepGoneAt = Math.max(1024, 2 * this.#gone.size);
    }
    for (const host of hosts) this.#gone.set(host, now + graceMs);
  }

  /** Host names remembered as recently gone, expired ones included until the next sweep. */
  get goneCount(): number {
    return this.#gone.size;
  }

  /** The route `key` of `user`, if any. */
  get(user: string, key: string): Route | undefined {
    return this.#byUserKey.get(user + "\0" + key);
  }

  /** The live service `name` of `user`, if any. */
  named(user: string, name: string): Route | undefined {
    return this.#byUserName.get(user + "\0" + name);
  }

  /** Number of routes `user` holds. */
  countOf(user: string): number {
    return this.#perUser.get(user) ?? 0;
  }

  /** Every route, in registration order. */
  all(): IterableIterator<Route> {
    return this.#byUserKey.values();
  }

  /**
   * Adds a route, in place of `replacing` when given (the same user and key).
   * Throws, changing nothing, `CONDUCTOR_ERR_KEY_TAKEN` when the user already
   * holds the key otherwise, and `CONDUCTOR_ERR_HOST_TAKEN` when another route
   * already renders to one of its host names.
   */
  add(route: Route, replacing?: Route): void {
    const id = route.user + "\0" + route.key;
    const current = this.#byUserKey.get(id);
    if (current !== undefined && current !== replacing) {
      throw new ConductorError("CONDUCTOR_ERR_KEY_TAKEN", `Cannot register route: user ${route.user} already holds key '${route.key}'`);
    }
    const named = this.#byUserName.get(route.user + "\0" + route.name);
    if (named !== undefined && named !== replacing) {
      throw new ConductorError("CONDUCTOR_ERR_KEY_TAKEN",
        `Cannot register route: user ${route.user} already has a live service named '${route.name}' (key '${named.key}'); stop it first or choose another name`);
    }
    for (const host of route.hosts) {
      const other = this.#byHost.get(host);
      if (other !== undefined && other !== replacing) {
        throw new ConductorError("CONDUCTOR_ERR_HOST_TAKEN",
          `Cannot register route: host ${host} is already served by key '${other.key}' of user ${other.user}; choose another key with -k`);
      }
    }
    if (current !== undefined) this.remove(current);
    if (replacing !== undefined && replacing !== current) this.remove(replacing);
    this.#byUserKey.set(id, route);
    this.#byUserName.set(route.user + "\0" + route.name, route);
    for (const host of route.hosts) this.#gone.delete(host);
    for (const host of route.hosts) this.#byHost.set(host, route);
    this.#perUser.set(route.user, this.countOf(route.user) + 1);
  }

  /**
   * Removes `route` if it is still the table's route for its user and key;
   * returns whether it was. With `graceMs`, its host names are remembered
   * that long as recently gone (see {@link recentlyGone}).
   */
  remove(route: Route, graceMs = 0): boolean {
    const id = route.user + "\0" + route.key;
    if (this.#byUserKey.get(id) !== route) return false;
    this.#byUserKey.delete(id);
    if (this.#byUserName.get(route.user + "\0" + route.name) === route) this.#byUserName.delete(route.user + "\0" + route.name);
    for (const host of route.hosts) {
      if (this.#byHost.get(host) === route) this.#byHost.delete(host);
    }
    this.markGone(route.hosts, graceMs);
    const n = this.countOf(route.user) - 1;
    if (n > 0) this.#perUser.set(route.user, n);
    else this.#perUser.delete(route.user);
    return true;
  }
}
