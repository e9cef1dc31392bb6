/**
 * The connections to one route's app socket: keep-alive connections, so that
 * a stream of requests does not open a new SSH channel each time, and the
 * websocket tunnels, so that they end with the route.
 *
 * Idle connections are reused last-in first-out (the most recently used one
 * is the least likely to have been closed by the app), bounded in number and
 * closed after an idle time-out. Only the {@link WARM_IDLE} most recently
 * used ones wait that long: the others, spares left by a burst that recent
 * use no longer needs, close after {@link SPARE_IDLE_MS}, because every open
 * SSH channel slows every request through the tunnel.
 *
 * Each connection is an SSH channel and a descriptor on both ends, so their
 * number is capped per route; requests beyond the cap wait in a short queue
 * for the next connection freed, and are turned away (the caller answers
 * 503) when the queue is full or the wait too long.
 *
 * @module
 */
import type { Socket } from "node:net";
import type { Stats } from "./stats.ts";
import { clock, everySecond } from "../lib/sweeper.ts";
import { SPARE_IDLE_MS, Upstream, type UpstreamOwner, type UpstreamTimeouts } from "./upstream.ts";

/** Settings of a {@link RoutePool}. */
export interface PoolOptions extends UpstreamTimeouts {
  /** Most idle connections kept per route. */
  maxIdle: number;
  /** Most connections open to the app at once, websocket tunnels included; 0 for no cap. */
  maxOpen: number;
  /** Most requests waiting for a connection at the cap; more are turned away. */
  maxWaiting: number;
  /** Longest wait for a connection at the cap, in ms. */
  waitMs: number;
}

/**
 * Default pool settings: 32 idle connections, 30 s idle, 300 s response
 * silence; 64 connections per app, as many waiting, for up to 10 s.
 */
export const DEFAULT_POOL_OPTIONS: PoolOptions = { maxIdle: 32, idle: 30_000, response: 300_000, maxOpen: 64, maxWaiting: 64, waitMs: 10_000 };

/** Idle connections kept for the whole idle time-out; more are spares (see {@link SPARE_IDLE_MS}). */
export const WARM_IDLE = 4;

/** A request that asks a pool for a connection. */
export interface PoolClient {
  /** Receives a connection to use, or null: turned away (the cap's queue is full, the wait ran out, the route went). */
  take(upstream: Upstream | null): void;
}

/** A request waiting for a connection at the cap. */
interface Waiter {
  client: PoolClient;
  /** It needs a new connection (an upgrade), not a reused one. */
  fresh: boolean;
  since: number;
}

/** Connections to one app socket. */
export class RoutePool implements UpstreamOwner {
  readonly path: string;
  #options: PoolOptions;
  #stats: Stats;
  // Created on first use: an idle route costs little.
  #idle: Upstream[] | null = null;
  #open: Set<Upstream> | null = null;
  #tunnels: Set<Socket> | null = null;
  #waiting: Waiter[] = [];
  #stopSweep: (() => void) | null = null;
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

  /** Requests waiting for a connection now. */
  get waitingCount(): number {
    return this.#waiting.length;
  }

  /**
   * Hands `client` a connection: an idle one (unless `fresh`), a new one, or
   * at the cap the next one freed, in order of asking; or null when the queue
   * is full, the wait ran out or the route went. A client still waiting is
   * taken out of the queue with {@link withdraw}.
   */
  lease(client: PoolClient, fresh = false): void {
    if (!fresh) {
      const upstream = this.#idle?.pop();
      if (upstream !== undefined) {
        this.#stats.upstreamReuses++;
        return client.take(upstream);
      }
    }
    if (this.#closed || !this.#atCap()) return client.take(this.connect(fresh));
    if (this.#waiting.length >= this.#options.maxWaiting) return client.take(null);
    this.#waiting.push({ client, fresh, since: clock.now });
    this.#stopSweep ??= everySecond((now) => this.#expire(now));
  }

  /** Takes `client` out of the queue if it waits there (its browser went away); safe to call when it does not. */
  withdraw(client: PoolClient): void {
    if (this.#waiting.length === 0) return;
    const i = this.#waiting.findIndex((w) => w.client === client);
    if (i !== -1) this.#withdraw(this.#waiting[i]);
  }

  /**
   * A new connection, never a reused one, whatever the cap (a retry of a
   * request that already held a slot); `upgrade` for an upgrade request.
   */
  connect(upgrade = false): Upstream {
    this.#stats.upstreamConnects++;
    this.#stats.upstreamOpen++;
    const upstream = new Upstream(this.path, this, this.#options, upgrade);
    (this.#open ??= new Set()).add(upstream);
    return upstream;
  }

  /** Takes a connection back after an exchange: to the first request waiting, else to the idle ones. */
  release(upstream: Upstream): void {
    const next = this.#waiting[0];
    if (next !== undefined && !this.#closed) {
      if (next.fresh) {
        // Its slot goes to a new connection for the upgrade waiting first (see forget).
        upstream.destroy();
        return;
      }
      this.#withdraw(next);
      this.#stats.upstreamReuses++;
      next.client.take(upstream);
      return;
    }
    const idle = (this.#idle ??= []);
    if (this.#closed || idle.length >= this.#options.maxIdle) {
      upstream.destroy();
      return;
    }
    upstream.park();
    idle.push(upstream);
  }

  /** True when `upstream` is idle below the {@link WARM_IDLE} most recently used idle connections. */
  isSpare(upstream: Upstream): boolean {
    const idle = this.#idle;
    if (idle === null || idle.length <= WARM_IDLE) return false;
    // Idle connections stand in the order they were released: the first ones have waited longest.
    const i = idle.indexOf(upstream);
    return i !== -1 && i < idle.length - WARM_IDLE;
  }

  /** Drops a connection that closed (or became a tunnel); its slot goes to the first request waiting. */
  forget(upstream: Upstream): void {
    if (this.#open?.delete(upstream) === true) this.#stats.upstreamOpen--;
    const i = this.#idle?.indexOf(upstream) ?? -1;
    if (i !== -1) this.#idle!.splice(i, 1);
    this.#slotFreed();
  }

  /** Takes a connection that became a tunnel, to end it with the route. */
  adopt(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const tunnels = (this.#tunnels ??= new Set());
    tunnels.add(socket);
    socket.once("close", () => {
      tunnels.delete(socket);
      this.#slotFreed();
    });
  }

  /**
   * Takes no more requests, for a route replaced by a new registration: idle
   * connections end and waiting requests are turned away now, while the
   * exchanges in progress and the websocket tunnels finish on their own (the
   * old socket usually still answers). Safe to call twice.
   */
  retire(): void {
    this.#closed = true;
    for (const waiter of [...this.#waiting]) {
      this.#withdraw(waiter);
      waiter.client.take(null);
    }
    for (const upstream of this.#idle?.splice(0) ?? []) upstream.destroy();
  }

  /** Ends every connection now, busy ones and tunnels included, and keeps none from now on. Safe to call twice. */
  destroy(): void {
    this.retire();
    // Busy connections fail their exchange: the browser gets a 502 (or a cut), not a wait that never ends.
    for (const upstream of this.#open ?? []) upstream.abort("the route was removed");
    for (const socket of this.#tunnels ?? []) socket.destroy();
  }

  #atCap(): boolean {
    const max = this.#options.maxOpen;
    return max > 0 && this.openCount + (this.#tunnels?.size ?? 0) >= max;
  }

  /**
   * A connection closed or left: the first requests waiting get new ones.
   * After the current task, so that a connection turning into a tunnel (forgotten, then adopted) keeps its slot.
   */
  #slotFreed(): void {
    if (this.#waiting.length === 0) return;
    queueMicrotask(() => {
      while (this.#waiting.length > 0 && !this.#closed && !this.#atCap()) {
        const waiter = this.#waiting[0];
        this.#withdraw(waiter);
        waiter.client.take(this.connect(waiter.fresh));
      }
    });
  }

  #withdraw(waiter: Waiter): void {
    const i = this.#waiting.indexOf(waiter);
    if (i !== -1) this.#waiting.splice(i, 1);
    if (this.#waiting.length === 0 && this.#stopSweep !== null) {
      this.#stopSweep();
      this.#stopSweep = null;
    }
  }

  /** Turns away the requests that waited longer than the pool's wait. */
  #expire(now: number): void {
    for (const waiter of [...this.#waiting]) {
      if (now - waiter.since < this.#options.waitMs) break;
      this.#withdraw(waiter);
      waiter.client.take(null);
    }
  }
}
