/**
 * Caps on browser connections, in total and per client address, so that one
 * client (or a flood) cannot take every descriptor of the gateway. A
 * connection beyond a cap is answered 503 with Retry-After, never silently
 * dropped; past a hard ceiling of such answers in flight, it is just closed.
 *
 * @module
 */
import type { Socket } from "node:net";
import { clock, everySecond } from "../lib/sweeper.ts";
import { busyResponse } from "./pages.ts";

/** The caps; 0 for none. */
export interface ConnectionCaps {
  /** Most connections open at once (websocket tunnels included). */
  maxTotal: number;
  /** Most connections open at once from one client address (TCP only; a reverse proxy on a UNIX socket has none). */
  maxPerAddress: number;
}

/** Default caps: 8192 connections, 512 from one address (a campus behind one NAT address). */
export const DEFAULT_CONNECTION_CAPS: ConnectionCaps = { maxTotal: 8192, maxPerAddress: 512 };

/** Descriptors kept for everything but browser connections: control connections, state files, logs. */
const RESERVED_FDS = 48;

/**
 * The total cap that fits `openFiles` descriptors: a proxied connection holds
 * two (the browser's and the app's), and some are kept for the rest. Returns
 * `caps` unchanged when they fit.
 */
export function fitToDescriptors(caps: ConnectionCaps, openFiles: number | null): ConnectionCaps {
  if (openFiles === null) return caps;
  const fits = Math.max(4, Math.floor((openFiles - RESERVED_FDS) / 2));
  return caps.maxTotal === 0 || caps.maxTotal > fits ? { ...caps, maxTotal: fits } : caps;
}

/** How long a refused connection reads (and drops) what its browser sends before it is closed, in ms (on the once-a-second sweep). */
const REFUSED_LINGER_MS = 2000;
/** How much of what a refused connection's browser sends is read and dropped before the connection is closed. */
const REFUSED_LINGER_BYTES = 64 * 1024;

/** Counts connections per client address and refuses those beyond the caps. */
export class ConnectionLimiter {
  readonly #caps: ConnectionCaps;
  #perAddress = new Map<string, number>();
  /**
   * Refused connections waiting to close, by the coarse time of their refusal,
   * oldest first: those whose browser has sent nothing yet, and those it is
   * sending to (a request is on its way: they are closed last).
   */
  #silent = new Map<Socket, number>();
  #talking = new Map<Socket, number>();
  #stopSweep: (() => void) | null = null;
  /** Most refused connections waiting to close at once (each holds a descriptor). */
  readonly #maxLingering: number;

  constructor(caps: ConnectionCaps) {
    this.#caps = caps;
    this.#maxLingering = caps.maxTotal === 0 ? 256 : Math.max(1, Math.min(256, Math.floor(caps.maxTotal / 4)));
  }

  /**
   * Takes `socket` in when `open` (connections open now) and its address's
   * count are under the caps, counting it until it closes (true); otherwise
   * answers it 503 and closes it (false).
   */
  admit(socket: Socket, address: string | null, open: number): boolean {
    const { maxTotal, maxPerAddress } = this.#caps;
    const fromAddress = address === null ? 0 : this.#perAddress.get(address) ?? 0;
    if ((maxTotal > 0 && open >= maxTotal) || (maxPerAddress > 0 && fromAddress >= maxPerAddress)) {
      this.#refuse(socket);
      return false;
    }
    if (address !== null) {
      this.#perAddress.set(address, fromAddress + 1);
      socket.once("close", () => {
        const left = this.#perAddress.get(address)! - 1;
        if (left === 0) this.#perAddress.delete(address);
        else this.#perAddress.set(address, left);
      });
    }
    return true;
  }

  /**
   * Answers 503 with Retry-After and closes the write side; what the browser
   * sends meanwhile is read and dropped, so that it reads the answer rather
   * than a reset (a lingering close, as nginx's). The connection closes when
   * the browser does, or after {@link REFUSED_LINGER_MS} or
   * {@link REFUSED_LINGER_BYTES}. At most {@link #maxLingering} wait so: a
   * flood makes room by closing its oldest connections whose browser sent
   * nothing first.
   */
  #refuse(socket: Socket): void {
    if (this.#silent.size + this.#talking.size >= this.#maxLingering) {
      const [oldest] = this.#silent.size > 0 ? this.#silent.keys() : this.#talking.keys();
      this.#forget(oldest);
      oldest.destroy();
    }
    this.#silent.set(socket, clock.now);
    this.#stopSweep ??= everySecond((now) => this.#sweep(now));
    let dropped = 0;
    socket.on("data", (chunk: Buffer) => {
      const since = this.#silent.get(socket);
      if (since !== undefined) {
        this.#silent.delete(socket);
        this.#talking.set(socket, since);
      }
      dropped += chunk.length;
      if (dropped > REFUSED_LINGER_BYTES) socket.destroy();
    });
    socket.on("end", () => socket.destroy());
    socket.on("error", () => socket.destroy());
    socket.once("close", () => this.#forget(socket));
    socket.end(busyResponse());
  }

  #forget(socket: Socket): void {
    if (!this.#silent.delete(socket)) this.#talking.delete(socket);
    if (this.#silent.size + this.#talking.size === 0 && this.#stopSweep !== null) {
      this.#stopSweep();
      this.#stopSweep = null;
    }
  }

  /** Closes the refused connections that waited long enough. */
  #sweep(now: number): void {
    for (const waiting of [this.#silent, this.#talking]) {
      for (const [socket, since] of waiting) {
        if (now - since < REFUSED_LINGER_MS) break;
        socket.destroy();
      }
    }
  }
}
