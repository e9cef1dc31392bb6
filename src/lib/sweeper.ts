/**
 * One coarse timer for the hot path: connections note the time of their last
 * activity from {@link clock} (no timer per request), and once a second the
 * registered sweeps look for connections past their time limits.
 *
 * @module
 */

/** The coarse clock, in ms since the epoch, updated on every sweep. */
export const clock = { now: Date.now() };

/** How often sweeps run, in ms. */
export const SWEEP_MS = 1000;

const sweeps = new Set<(now: number) => void>();
let timer: NodeJS.Timeout | null = null;

/** Runs `sweep` once a second until the returned function is called. */
export function everySecond(sweep: (now: number) => void): () => void {
  sweeps.add(sweep);
  if (timer === null) {
    timer = setInterval(() => {
      const now = Date.now();
      clock.now = now;
      for (const s of sweeps) s(now);
    }, SWEEP_MS);
    timer.unref();
  }
  return () => {
    sweeps.delete(sweep);
    if (sweeps.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  };
}
