/**
 * Caps on browser connections, in total and per client address, so that one
 * client (or a flood) cannot take every descriptor of the gateway. A
 * connection beyond a cap is answered 503 with Retry-After, never silently
 * dropped; past a hard ceiling of such answers in flight, it is just closed.
 *
 * @module
 */
import type { Socket } from "node:net";
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

/** How long a refused connection may read (and discard) the request it sends before it is closed, in ms. */
const REFUSED_LINGER_MS = 2000;

/** Counts connections per client address and refuses those beyond the caps. */
export class ConnectionLimiter {
  readonly #caps: ConnectionCaps;
  #perAddress = new Map<string, number>();
  #lingering = 0;
  /** Most refused connections lingering at once (each holds a descriptor); beyond, they are closed without an answer. */
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

  #refuse(socket: Socket): void {
    socket.on("error", () => socket.destroy());
    if (this.#lingering >= this.#maxLingering) {
      socket.destroy();
      return;
    }
    // The answer goes first; what the browser sends meanwhile is read and dropped, so that it gets the answer, not a reset.
    this.#lingering++;
    socket.once("close", () => { this.#lingering--; });
    socket.end(busyResponse());
    socket.resume();
    setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
  }
}
