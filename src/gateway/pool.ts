/**
 * Keep-alive connections to one route's app socket, so that a stream of
 * requests does not open a new SSH channel each time.
 *
 * Idle connections are reused last-in first-out (the most recently used one
 * is the least likely to have been closed by the app), bounded in number and
 * closed after an idle time-out.
 *
 * @module
 */
import type { Stats } from "./stats.ts";
import { Upstream, type UpstreamOwner, type UpstreamTimeouts } from "./upstream.ts";

/** Settings of a {@link RoutePool}. */
export interface PoolOptions extends UpstreamTimeouts {
  /** Most idle connections kept per route. */
  maxIdle: number;
}

/** Default pool settings: 32 idle connections, 30 s idle, 300 s response silence. */
export const DEFAULT_POOL_OPTIONS: PoolOptions = { maxIdle: 32, idle: 30_000, response: 300_000 };

/** Connections to one app socket. */
export class RoutePool implements UpstreamOwner {
  readonly path: string;
  #options: PoolOptions;
  #stats: Stats;
  #idle: Upstream[] = [];
  #open = new Set<Upstream>();
  #closed = false;

  constructor(path: string, stats: Stats, options: PoolOptions = DEFAULT_POOL_OPTIONS) {
    this.path = path;
    this.#stats = stats;
    this.#options = options;
  }

  /** Idle connections now. */
  get idleCount(): number {
    return this.#idle.length;
  }

  /** Open connections now, idle or busy. */
  get openCount(): number {
    return this.#open.size;
  }

  /** An idle connection if there is one, else a new one. */
  acquire(): Upstream {
    const upstream = this.#idle.pop();
    if (upstream !== undefined) {
      this.#stats.upstreamReuses++;
      return upstream;
    }
    return this.connect();
  }

  /** A new connection, never a reused one. */
  connect(): Upstream {
    this.#stats.upstreamConnects++;
    const upstream = new Upstream(this.path, this, this.#options);
    this.#open.add(upstream);
    return upstream;
  }

  /** Takes a connection back after an exchange. */
  release(upstream: Upstream): void {
    if (this.#closed || this.#idle.length >= this.#options.maxIdle) {
      upstream.destroy();
      return;
    }
    upstream.park();
    this.#idle.push(upstream);
  }

  /** Drops a connection that closed. */
  forget(upstream: Upstream): void {
    this.#open.delete(upstream);
    const i = this.#idle.indexOf(upstream);
    if (i !== -1) this.#idle.splice(i, 1);
  }

  /** Closes idle connections and refuses to keep any from now on; busy ones finish first. Safe to call twice. */
  close(): void {
    this.#closed = true;
    for (const upstream of this.#idle.splice(0)) upstream.destroy();
  }

  /** Ends every connection now, busy ones included. */
  destroy(): void {
    this.close();
    for (const upstream of this.#open) upstream.destroy();
  }
}
