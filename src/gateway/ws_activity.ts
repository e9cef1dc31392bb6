/**
 * Tells browser activity from keep-alive traffic on a websocket: follows the
 * frame headers of what the browser sends (RFC 6455, section 5.2) without
 * buffering payloads, so that ping, pong and close frames do not count as use.
 *
 * @module
 */

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
