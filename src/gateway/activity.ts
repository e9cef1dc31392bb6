/**
 * Browser use of a route, the gateway's part of idle shutdown: what counts
 * as use, in one place. A route's `lastActivity` moves forward here and
 * nowhere else (a run's new registration only inherits it); the control
 * connection reads it for `--max-idle` and for the `activity` lines that
 * `conductor --idle-timeout` waits on.
 *
 * Use is what a browser sends: an authorized request head, request body
 * bytes, and websocket data frames. Keep-alive traffic is not use: the
 * app's own messages, and a websocket's ping, pong and close frames, which
 * {@link WebSocketActivity} tells apart by following the frame headers of
 * what the browser sends (RFC 6455, section 5.2) without buffering payloads.
 *
 * @module
 */
import { clock } from "../lib/sweeper.ts";
import type { Route } from "./routes.ts";

/** Notes browser use of `route` now: an authorized request head or request body bytes. */
export function noteUse(route: Route): void {
  route.lastActivity = clock.now;
}

/** Notes the browser's websocket bytes `chunk` as use of `route` when they hold any part of a data frame (`frames` null: any protocol but websocket, every byte counts). */
export function noteTunnelUse(route: Route, frames: WebSocketActivity | null, chunk: Buffer): void {
  if (frames === null || frames.scan(chunk)) route.lastActivity = clock.now;
}

/** Reads frame headers across chunks; payload bytes are only counted past. */
export class WebSocketActivity {
  /** Bytes of the current frame's payload still to come. */
  #skip = 0;
  /** Whether the current frame carries data (text, binary, continuation). */
  #data = false;
  #header = Buffer.alloc(14);
  #have = 0;
  #need = 2;

  /** True when `chunk` holds any part of a data frame, false when it holds only control frames. */
  scan(chunk: Buffer): boolean {
    let active = false;
    let i = 0;
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        if (this.#data) active = true;
        continue;
      }
      const h = this.#header;
      h[this.#have++] = chunk[i++];
      if (this.#have === 2) {
        const len7 = h[1] & 0x7f;
        this.#need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((h[1] & 0x80) !== 0 ? 4 : 0);
      }
      if (this.#have < this.#need) continue;
      const len7 = h[1] & 0x7f;
      this.#skip = len7 === 126 ? h.readUInt16BE(2) : len7 === 127 ? h.readUInt32BE(2) * 2 ** 32 + h.readUInt32BE(6) : len7;
      this.#data = (h[0] & 0x08) === 0;
      if (this.#data) active = true;
      this.#have = 0;
      this.#need = 2;
    }
    return active;
  }
}
