/**
 * What a registration publishes, a route or a stream, as the registrar
 * keeps it: who holds it (a control connection, or nobody while it waits
 * for its client after a restart), the socket it serves, and whether it
 * has ended. A publication ends once: every way to end it goes through
 * the registrar, which checks {@link Publication.ended}.
 *
 * @module
 */
import type { Route } from "../../gateway/routes.ts";
import type { StreamRecord } from "../../state/streams_file.ts";

/** The side of a control connection the registrar talks to. */
export interface Holder {
  /** True once the connection is gone: work still queued for it is dropped. */
  readonly gone: boolean;
  /** A new registration of the same run took the publication's place (it has ended): the holder closes its connection. */
  replaced(reason: string): void;
  /** The publication was closed for being idle `seconds` past --max-idle (it has ended): the holder tells its client `reason` and closes. */
  closedIdle(reason: string, seconds: number): void;
  /**
   * Browsers used the route; it has been idle `seconds` since (told at most
   * once a second). False when the client is not reading: it is told later.
   */
  activity(seconds: number): boolean;
}

/**
 * How a publication's connection ended: `dropped` without a goodbye (its
 * client is probably coming back: a route's host answers 503 and a stream's
 * port stays reserved for a while), `goodbye` on purpose (gone at once), or
 * `kept` because the gateway is stopping (it stays published and stored for
 * the next start to take over).
 */
export type Ending = "dropped" | "goodbye" | "kept";

/** A route or a stream, published. */
export interface Publication {
  readonly kind: "http" | "tcp";
  /** The user who holds it. */
  readonly user: string;
  /** Its client directory, holding the forwarded socket. */
  readonly directory: string;
  /** The forwarded socket it serves. */
  readonly socketPath: string;
  /** Hex blake2b-512 of its run's token: the same run coming back presents the same. */
  readonly auth: string;
  /** Its control connection, or null while it waits for its client after a restart. */
  holder: Holder | null;
  /** When its socket started failing probes while it waits (ms since the epoch), 0 while it answers. */
  silentSince: number;
  /** Set once, when it ends. */
  ended: boolean;
}

/** A published route. */
export interface RoutePublication extends Publication {
  readonly kind: "http";
  readonly route: Route;
  /** When it went live (coarse clock): idle time counts from there before any activity. */
  readonly liveSince: number;
  /** The route's last activity told to its holder. */
  reported: number;
}

/** A user's published stream. */
export interface StreamPublication extends Publication {
  readonly kind: "tcp";
  readonly record: StreamRecord;
}
