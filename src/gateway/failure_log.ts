/**
 * The log line for a request whose app did not answer, at most once per
 * route every 10 seconds: a dead app hit by many requests (or by someone on
 * purpose) must not flood the gateway's log. The next line says how many
 * were left out.
 *
 * @module
 */
import type { Fields, Logger } from "../lib/log.ts";
import type { Route } from "./routes.ts";
import { clock } from "../lib/sweeper.ts";

/** Least time between two lines of one route, in ms. */
const QUIET_MS = 10_000;

const lastLine = new WeakMap<Route, { at: number; leftOut: number }>();

/** Logs "app did not answer" for `route` with `fields`, unless it did less than 10 s ago. */
export function logAppFailure(logger: Logger, route: Route, fields: Fields): void {
  const now = clock.now;
  const last = lastLine.get(route);
  if (last !== undefined && now - last.at < QUIET_MS) {
    last.leftOut++;
    return;
  }
  const leftOut = last?.leftOut ?? 0;
  logger.info("app did not answer", { route: route.key, user: route.user, ...fields, ...(leftOut > 0 ? { moreSinceLastLine: leftOut } : {}) });
  lastLine.set(route, { at: now, leftOut: 0 });
}
