/**
 * The client's idle watch (--idle-timeout): browser activity as the gateway
 * reports it, and a timer that fires once the app has gone unused that long.
 *
 * @module
 */

/** Longest delay setTimeout takes (a longer one fires at once). */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** Counts idle time from `start()` and from each activity report; calls `onIdle` once, when it reaches the limit. */
export class IdleWatch {
  readonly #limitMs: number;
  readonly #onIdle: (seconds: number) => void;
  #last = 0;
  #timer: NodeJS.Timeout | null = null;
  #fired = false;
  #paused = false;

  constructor(limitMs: number, onIdle: (seconds: number) => void) {
    this.#limitMs = limitMs;
    this.#onIdle = onIdle;
  }

  /** True once started. */
  get armed(): boolean {
    return this.#last !== 0;
  }

  /**
   * Starts counting now (when the app first went live, or again after a
   * pause); on a live registration that reports activity it does nothing.
   */
  start(): void {
    if (this.#fired || (this.armed && !this.#paused)) return;
    this.#paused = false;
    this.#last = Date.now();
    this.#arm();
  }

  /** Stops counting while the gateway does not report activity (an older one after a reconnect). */
  pause(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.armed) this.#paused = true;
  }

  /** Browser activity reported `idleSeconds` ago. */
  activity(idleSeconds: number): void {
    if (!this.armed || this.#fired || this.#paused) return;
    this.#last = Math.max(this.#last, Date.now() - Math.max(0, idleSeconds) * 1000);
    this.#arm();
  }

  /** Stops the timer for good. */
  stop(): void {
    this.#fired = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #arm(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    const left = this.#last + this.#limitMs - Date.now();
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const idleMs = Date.now() - this.#last;
      if (idleMs < this.#limitMs) return this.#arm();
      this.stop();
      this.#onIdle(Math.floor(idleMs / 1000));
    }, Math.min(MAX_DELAY_MS, Math.max(0, left)));
  }
}
