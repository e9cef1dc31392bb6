/**
 * Where tests register cleanups: a TestContext (`t`), or for resources shared
 * by a `describe` block, {@link suiteCleanup}.
 *
 * @module
 */
import { after } from "node:test";

/** Anything with an `after(fn)` that runs `fn` when the test or suite ends. */
export interface Cleanup {
  after(fn: () => unknown): void;
}

/**
 * A cleanup list for a `describe` block: call this in the block's body (not in
 * a hook); what is registered runs, last first, when the block ends.
 */
export function suiteCleanup(): Cleanup {
  const fns: Array<() => unknown> = [];
  after(async () => {
    for (const fn of fns.reverse()) await fn();
  });
  return { after: (fn) => { fns.push(fn); } };
}
