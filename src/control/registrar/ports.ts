/**
 * Which port a stream gets. Ports are sticky: the gateway remembers
 * `owner/name → port`, and the same service gets its port again while it is
 * free. A port whose stream dropped without a goodbye stays reserved for
 * that owner and name for a grace period: nobody else gets it meanwhile,
 * even by asking for it, so that a client reconnecting never finds its
 * port (and its clients) handed to someone else.
 *
 * @module
 */
import type { PortRange } from "../../streams/validate.ts";

/** The key of a service: its owner and name. */
export function serviceKey(owner: string, name: string): string {
  return `${owner}/${name}`;
}

/** A port kept for a service whose client dropped. */
interface Reservation {
  key: string;
  until: number;
}

/** Sticky ports and reservations of one gateway's range. */
export class PortPolicy {
  readonly range: PortRange;
  readonly #sticky: Map<string, number>;
  readonly #reserved = new Map<number, Reservation>();

  constructor(range: PortRange, sticky: Map<string, number>) {
    this.range = range;
    this.#sticky = sticky;
  }

  /** The sticky ports, `owner/name → port`, oldest first (what is stored). */
  get sticky(): Map<string, number> {
    return this.#sticky;
  }

  /** Keeps `port` for service `key` until `until` (ms since the epoch). */
  reserve(port: number, key: string, until: number): void {
    // The newest last: limit() ends the oldest first.
    this.#reserved.delete(port);
    this.#reserved.set(port, { key, until });
  }

  /**
   * Ends the reservations of `owner`'s services but the `keep` newest, so
   * that a user who drops stream after stream keeps no more ports than it
   * may hold, and cannot reserve the whole range.
   */
  limit(owner: string, keep: number, now = Date.now()): void {
    const ports = [...this.#reserved].filter(([, r]) => r.until > now && r.key.startsWith(`${owner}/`)).map(([port]) => port);
    for (const port of ports.slice(0, Math.max(0, ports.length - keep))) this.#reserved.delete(port);
  }

  /** The service `port` is reserved for at `now` and until when, if it is. */
  reservation(port: number, now = Date.now()): Reservation | undefined {
    const r = this.#reserved.get(port);
    if (r !== undefined && r.until <= now) {
      this.#reserved.delete(port);
      return undefined;
    }
    return r;
  }

  /** True when `key` may have `port` as far as reservations go. */
  mayHave(port: number, key: string, now = Date.now()): boolean {
    const r = this.reservation(port, now);
    return r === undefined || r.key === key;
  }

  /** Ends the reservation of `port`, if any (its service got it back, or an admin took it). */
  release(port: number): void {
    this.#reserved.delete(port);
  }

  /** Remembers that `key` has `port`, keeping the most recent entries (four per port of the range). */
  remember(key: string, port: number): void {
    this.#sticky.delete(key);
    this.#sticky.set(key, port);
    const most = 4 * (this.range.last - this.range.first + 1);
    for (const old of this.#sticky.keys()) {
      if (this.#sticky.size <= most) break;
      this.#sticky.delete(old);
    }
  }

  /**
   * The ports service `key` may get, best first: the port kept for it, or
   * else its sticky port, then ports nobody remembers, then ports others
   * had; never one in use (`taken`) or reserved for another service.
   */
  candidates(key: string, taken: (port: number) => boolean, now = Date.now()): number[] {
    const { first, last } = this.range;
    const remembered = new Set(this.#sticky.values());
    const free: number[] = [];
    for (let port = first; port <= last; port++) if (!taken(port) && this.mayHave(port, key, now)) free.push(port);
    // A kept port comes first even when others' registrations have pushed it out of the sticky memory.
    const kept = free.find((p) => this.#reserved.get(p)?.key === key);
    const own = kept ?? this.#sticky.get(key);
    return [
      ...(own !== undefined && free.includes(own) ? [own] : []),
      ...free.filter((p) => !remembered.has(p) && p !== own),
      ...free.filter((p) => remembered.has(p) && p !== own),
    ];
  }
}
