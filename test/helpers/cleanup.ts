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

const stacks = new WeakMap<Cleanup, Array<() => unknown>>();

/**
 * Registers `fn` to run when `t` ends, last registered first (like Go's
 * defer): a process started after its directory was made is stopped before
 * the directory is removed. node:test runs `t.after` hooks first registered
 * first, which gets that order wrong.
 */
export function defer(t: Cleanup, fn: () => unknown): void {
  let stack = stacks.get(t);
  if (stack === undefined) {
    const fns: Array<() => unknown> = [];
    stack = fns;
    stacks.set(t, fns);
    t.after(async () => {
      while (fns.length > 0) await fns.pop()!();
    });
  }
  stack.push(fn);
}
