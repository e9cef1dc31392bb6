/**
 * Waiting for a condition in tests, by polling.
 *
 * @module
 */

/** Polls `check` every 50 ms until it holds (true) or `timeoutMs`, a failure guard, passes (false). */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
