/**
 * Browser activity on the gateway's side: once a second, each held route's
 * client is told of activity since the last report, and a route no browser
 * used for --max-idle is closed. A run closed that way is refused if it
 * registers again (an original client takes the close for a drop and would
 * come straight back); a new run, with a new token, gets in.
 *
 * @module
 */
import type { RoutePublication } from "./publication.ts";

/** How long, at least, a run closed for being idle is refused if it registers again, in ms (--max-idle if longer). */
const IDLE_RUN_REFUSED_MS = 600_000;

/** The --max-idle policy and the runs it closed. */
export class IdlePolicy {
  /** A route without browser activity for this long is closed, in ms; 0 for never. */
  readonly maxIdleMs: number;
  /** Runs closed for being idle (user, key, token hash), until when a new registration of theirs is refused. */
  readonly #closed = new Map<string, number>();

  constructor(maxIdleMs: number) {
    this.maxIdleMs = maxIdleMs;
  }

  /** True when the run of `user`'s route `key` with token hash `auth` was closed for being idle lately. */
  refuses(user: string, key: string, auth: string, now: number): boolean {
    return (this.#closed.get(runKey(user, key, auth)) ?? 0) > now;
  }

  /**
   * Tells `publication`'s holder of new activity, and returns why to close
   * it and its idle seconds when it is idle past --max-idle (remembering its
   * run), or null.
   */
  sweep(publication: RoutePublication, now: number): { reason: string; seconds: number } | null {
    const { route, holder } = publication;
    const last = route.lastActivity;
    // Any change is news (the wall clock may step back).
    if (last !== 0 && last !== publication.reported && holder !== null && holder.activity(Math.max(0, Math.floor((now - last) / 1000)))) {
      publication.reported = last;
    }
    if (this.maxIdleMs === 0) return null;
    const idle = Math.floor((now - Math.max(last, publication.liveSince)) / 1000);
    if (idle * 1000 < this.maxIdleMs) return null;
    for (const [run, until] of this.#closed) if (until <= now) this.#closed.delete(run);
    this.#closed.set(runKey(route.user, route.key, publication.auth), now + Math.max(this.maxIdleMs, IDLE_RUN_REFUSED_MS));
    return { reason: `No browser used this app for ${idle} s, the limit of this gateway (conductor-server --max-idle ${this.maxIdleMs / 1000}s)`, seconds: idle };
  }
}

/** The key of one run's registrations: its user, route key and token hash. */
function runKey(user: string, key: string, auth: string): string {
  return `${user}/${key}/${auth}`;
}
