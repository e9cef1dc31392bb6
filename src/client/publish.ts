/**
 * Keeping a registration alive: register, wait for the control connection
 * to drop, and register again with exponential backoff and jitter, for as
 * long as the caller wants.
 *
 * @module
 */
import { messageOf, RegistrationRefused } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { EventSink } from "./events.ts";
import type { GatewaySession, Registration } from "./session.ts";

/** Pauses between reconnections: doubling from `initialMs` up to `maxMs`, each with jitter. */
export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/** The default backoff: 1 s doubling up to 30 s. */
export const DEFAULT_BACKOFF: Backoff = { initialMs: 1000, maxMs: 30_000 };

/** Settings of {@link keepPublished}. */
export interface KeepOptions {
  events: EventSink;
  logger: Logger;
  /** True when publishing should stop. */
  done: () => boolean;
  /** Settles when publishing should stop (interrupts waits). */
  ended: Promise<unknown>;
  /** Called each time the service goes live. */
  onLive?: (registration: Registration) => Promise<void> | void;
  backoff?: Backoff;
}

/**
 * Registers, waits for the registration to drop, and registers again, until
 * `done()`. Throws when the very first registration fails or the gateway
 * refuses one: trying again would not help.
 */
export async function keepPublished(session: GatewaySession, options: KeepOptions): Promise<void> {
  const { events, logger, done, ended } = options;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  let everLive = false;
  let attempt = 0;
  while (!done()) {
    try {
      const registration = await session.register();
      everLive = true;
      attempt = 0;
      await options.onLive?.(registration);
      await Promise.race([registration.closed, ended]);
      if (done()) return;
      events({ state: "dead" });
    } catch (err) {
      if (done()) return;
      if (err instanceof RegistrationRefused || !everLive) throw err;
      logger.warn("cannot reconnect to the gateway; trying again", { error: messageOf(err), attempt });
    }
    await session.reset();
    const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** attempt++);
    const delay = ceiling / 2 + Math.random() * ceiling / 2;
    logger.debug("reconnecting", { inMs: Math.round(delay) });
    await Promise.race([new Promise((r) => setTimeout(r, delay)), ended]);
  }
}
