/**
 * A rate limit on each user's registrations: a bucket per user that holds
 * `burst` registrations and refills at `perMinute`. A loop of registrations
 * (abandoned or not) costs its own user, not the others.
 *
 * @module
 */
import { ConductorError } from "../../lib/errors.ts";

/** Settings of {@link RegistrationRate}. */
export interface RateSettings {
  /** Registrations a user may make at once. */
  burst: number;
  /** Registrations a user may make per minute in the long run; 0 for no limit. */
  perMinute: number;
}

/** Defaults: a user restarting many runs at once gets through; a loop is slowed to two a second. */
export const DEFAULT_RATE: RateSettings = { burst: 60, perMinute: 120 };

/** The registrations each user has left. */
export class RegistrationRate {
  readonly #settings: RateSettings;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(settings: RateSettings = DEFAULT_RATE) {
    this.#settings = settings;
  }

  /** Counts a registration of `user` at `now`; throws `CONDUCTOR_ERR_RATE` when the user has none left. */
  take(user: string, now = Date.now()): void {
    const { burst, perMinute } = this.#settings;
    if (perMinute === 0) return;
    const perMs = perMinute / 60_000;
    const bucket = this.#buckets.get(user) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.at) * perMs);
    bucket.at = now;
    if (bucket.tokens < 1) {
      const wait = Math.ceil((1 - bucket.tokens) / perMs / 1000);
      this.#buckets.set(user, bucket);
      throw new ConductorError("CONDUCTOR_ERR_RATE",
        `Cannot register: user ${user} registered more than ${perMinute} times a minute, the limit of this gateway (--max-registrations-per-minute); try again in ${wait} s`);
    }
    bucket.tokens -= 1;
    this.#buckets.set(user, bucket);
    // Full buckets say nothing: forget them, so the map holds only users who registered lately.
    if (this.#buckets.size > 1024) {
      for (const [name, b] of this.#buckets) if (b.tokens + (now - b.at) * perMs >= burst) this.#buckets.delete(name);
    }
  }
}
