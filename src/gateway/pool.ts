/**
 * The connections to one route's app socket: keep-alive connections, so that
 * a stream of requests does not open a new SSH channel each time, and the
 * websocket tunnels, so that they end with the route.
 *
 * Idle connections are reused last-in first-out (the most recently used one
 * is the least likely to have been closed by the app), bounded in number and
 * closed after an idle time-out.
 *
 * @module
 */
import type { Socket } from "node:net";
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
  // Created on first use: an idle route costs little.
  #idle: Upstream[] | null = null;
  #open: Set<Upstream> | null = null;
  #tunnels: Set<Socket> | null = null;
  #closed = false;

  constructor(path: string, stats: Stats, options: PoolOptions = DEFAULT_POOL_OPTIONS) {
    this.path = path;
    this.#stats = stats;
    this.#options = options;
  }

  /** Idle connections now. */
  get idleCount(): number {
    return this.#idle?.length ?? 0;
  }

  /** Open connections now, idle or busy. */
  get openCount(): number {
    return this.#open?.size ?? 0;
  }

  /** An idle connection if there is one, else a new one. */
  acquire(): Upstream {
    const upstream = this.#idle?.pop();
    if (upstream !== undefined) {
      this.#stats.upstreamReuses++;
      return upstream;
    }
    return this.connect();
  }

  /** A new connection, never a reused one. */
  connect(): Upstream {
    this.#stats.upstreamConnects++;
    this.#stats.upstreamOpen++;
    const upstream = new Upstream(this.path, this, this.#options);
    (this.#open ??= new Set()).add(upstream);
    return upstream;
  }

  /** Takes a connection back after an exchange. */
  release(upstream: Upstream): void {
    const idle = (this.#idle ??= []);
    if (this.#closed || idle.length >= this.#options.maxIdle) {
      upstream.destroy();
      return;
    }
    upstream.park();
    idle.push(upstream);
  }

  /** Drops a connection that closed. */
  forget(upstream: Upstream): void {
    if (this.#open?.delete(upstream) === true) this.#stats.upstreamOpen--;
    const i = this.#idle?.indexOf(upstream) ?? -1;
    if (i !== -1) this.#idle!.splice(i, 1);
  }

  /** Takes a connection that became a tunnel, to end it with the route. */
  adopt(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const tunnels = (this.#tunnels ??= new Set());
    tunnels.add(socket);
    socket.once("close", () => tunnels.delete(socket));
  }

  /** Ends every connection now, busy ones and tunnels included, and keeps none from now on. Safe to call twice. */
  destroy(): void {
    this.#closed = true;
    for (const upstream of this.#idle?.splice(0) ?? []) upstream.destroy();
    // Busy connections fail their exchange: the browser gets a 502 (or a cut), not a wait that never ends.
    for (const upstream of this.#open ?? []) upstream.abort("the route was removed");
    for (const socket of this.#tunnels ?? []) socket.destroy();
  }
}
