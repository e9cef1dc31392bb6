/**
 * The app side of HTTP/1.1: a strict parser for response heads and a chunked
 * body decoder. App sockets belong to users, so what comes back is checked as
 * carefully as what browsers send.
 *
 * @module
 */

/** Longest response head accepted from an app, in bytes. */
export const MAX_RESPONSE_HEAD = 64 * 1024;

/** How the end of a response body is found (RFC 9112 section 6.3). */
export type Framing = "none" | "length" | "chunked" | "close";

/** A parsed response head. */
export interface ResponseHead {
  status: number;
  reason: string;
  /** Field lines to forward, each ending with CRLF, hop-by-hop fields removed. */
  fields: string;
  framing: Framing;
  /** Body length when `framing` is "length". */
  length: number;
  /** The connection may carry another request after this response. */
  keepAlive: boolean;
  /** The app's idle time-out from `Keep-Alive: timeout=N`, in ms, or null. */
  keepAliveTimeoutMs: number | null;
  /** The Upgrade field (a 101 response's new protocol), or null. */
  upgrade: string | null;
}

/** A response from an app that cannot be forwarded. */
export class BadResponseError extends Error {
  constructor(reason: string) {
    super(`Cannot forward response from app: ${reason}`);
    this.name = "BadResponseError";
  }
}

const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9]{2})(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Parses a response head (status line and header lines, without the final
 * empty line) decoded as latin1. `method` is the request's method: a HEAD
 * response has no body whatever its headers say.
 */
export function parseResponseHead(text: string, method: string): ResponseHead {
  let lineEnd = text.indexOf("\r\n");
  if (lineEnd === -1) lineEnd = text.length;
  const m = STATUS_LINE.exec(text.slice(0, lineEnd));
  if (m === null) throw new BadResponseError(`invalid status line ${JSON.stringify(text.slice(0, Math.min(lineEnd, 80)))}`);
  const http11 = m[1] === "1";
  const status = Number(m[2]);
  // Lines kept as received; `drop` marks the hop-by-hop and framing ones.
  const lines: string[] = [];
  const lower: Array<string | null> = [];
  let connection = "";
  let transferEncoding: string | null = null;
  let contentLength: string | null = null;
  let keepAliveHeader = "";
  let upgrade: string | null = null;
  let start = lineEnd + 2;
  while (start < text.length) {
    let end = text.indexOf("\r\n", start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 2;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new BadResponseError(`invalid header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon);
    const value = trimOws(line, colon + 1);
    if (!FIELD_NAME.test(name) || !FIELD_VALUE.test(value)) {
      throw new BadResponseError(`invalid header line ${JSON.stringify(line.slice(0, 80))}`);
    }
    // Only names as long as one the gateway cares about are lowercased.
    let key: string | null = null;
    switch (name.length) {
      case 2: case 7: case 10: case 14: case 16: case 17:
        key = name.toLowerCase();
        if (key === "connection") connection += (connection ? "," : "") + value.toLowerCase();
        else if (key === "transfer-encoding") transferEncoding = (transferEncoding === null ? "" : transferEncoding + ",") + value.toLowerCase();
        else if (key === "content-length") {
          if (contentLength !== null && contentLength !== value) throw new BadResponseError("conflicting Content-Length headers");
          contentLength = value;
        } else if (key === "keep-alive") keepAliveHeader = value;
        else if (key === "upgrade") upgrade = value;
        break;
    }
    lines.push(name + ": " + value + "\r\n");
    lower.push(key);
  }
  let named: Set<string> | null = null;
  let keepAlive = http11;
  if (connection !== "") {
    for (const raw of connection.split(",")) {
      const token = raw.trim();
      if (token === "close") keepAlive = false;
      else if (token === "keep-alive") { if (!http11) keepAlive = true; }
      // An app may name fields in Connection, but never the ones that frame the response.
      else if (token !== "" && token !== "content-length" && token !== "transfer-encoding") (named ??= new Set()).add(token);
    }
  }

  let framing: Framing;
  let length = 0;
  if (method === "HEAD" || status < 200 || status === 204 || status === 304) {
    framing = "none";
  } else if (transferEncoding !== null) {
    // Browsers understand no transfer coding but chunked, which the gateway decodes itself.
    if (transferEncoding.trim() !== "chunked") throw new BadResponseError(`unsupported Transfer-Encoding ${JSON.stringify(transferEncoding)}`);
    framing = "chunked";
    // A response with both is suspect (RFC 9112 6.3): deliver it, then close.
    if (contentLength !== null) keepAlive = false;
  } else if (contentLength !== null) {
    if (!/^[0-9]{1,15}$/.test(contentLength)) throw new BadResponseError(`invalid Content-Length ${JSON.stringify(contentLength)}`);
    length = Number(contentLength);
    framing = length === 0 ? "none" : "length";
  } else {
    framing = "close";
  }
  if (framing === "close") keepAlive = false;

  let fields = "";
  for (let i = 0; i < lines.length; i++) {
    const key = lower[i];
    if (key !== null && (HOP_BY_HOP.has(key) || (key === "content-length" && framing !== "length" && framing !== "none"))) continue;
    if (named !== null && named.has(key ?? lines[i].slice(0, lines[i].indexOf(":")).toLowerCase())) continue;
    fields += lines[i];
  }
  const timeout = keepAliveHeader === "" ? null : /(?:^|,)\s*timeout\s*=\s*([0-9]{1,6})/i.exec(keepAliveHeader);
  return {
    status,
    reason: m[3] ?? "",
    fields,
    framing,
    length,
    keepAlive,
    keepAliveTimeoutMs: timeout ? Number(timeout[1]) * 1000 : null,
    upgrade,
  };
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]);

/** `line` from `from`, without leading and trailing spaces and tabs. */
export function trimOws(line: string, from: number): string {
  let a = from;
  let b = line.length;
  while (a < b && (line.charCodeAt(a) === 32 || line.charCodeAt(a) === 9)) a++;
  while (b > a && (line.charCodeAt(b - 1) === 32 || line.charCodeAt(b - 1) === 9)) b--;
  return line.slice(a, b);
}

// States of the chunked decoder.
const SIZE = 0, SIZE_WS = 1, EXT = 2, SIZE_LF = 3, DATA = 4, DATA_CR = 5, DATA_LF = 6,
  TRAILER_START = 7, TRAILER = 8, TRAILER_LF = 9, END_LF = 10, DONE = 11;
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILERS = 16 * 1024;

/** Decodes a chunked body (RFC 9112 section 7.1) incrementally, strictly. */
export class ChunkedDecoder {
  #state = SIZE;
  #size = 0;
  #digits = 0;
  #lineBytes = 0;
  #trailerBytes = 0;

  /** Starts over for a new body. */
  reset(): void {
    this.#state = SIZE;
    this.#size = 0;
    this.#digits = 0;
    this.#lineBytes = 0;
    this.#trailerBytes = 0;
  }

  /** True once the last chunk and the trailer section were read. */
  get done(): boolean {
    return this.#state === DONE;
  }

  /**
   * Decodes `buf` from `start`, passing payload slices to `sink`. Returns the
   * index just past the end of the body, or -1 when more input is needed.
   * Throws {@link BadResponseError} on malformed framing.
   */
  decode(buf: Buffer, start: number, sink: (data: Buffer) => void): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      const state = this.#state;
      if (state === DATA) {
        const take = Math.min(this.#size, n - i);
        sink(buf.subarray(i, i + take));
        i += take;
        this.#size -= take;
        if (this.#size === 0) this.#state = DATA_CR;
        continue;
      }
      const c = buf[i++];
      switch (state) {
        case SIZE: {
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.#digits > 12) throw new BadResponseError("chunk size too large");
            this.#size = this.#size * 16 + v;
          } else if (this.#digits === 0) {
            throw new BadResponseError("invalid chunk size");
          } else if (c === 0x0d) this.#state = SIZE_LF;
          else if (c === 0x3b) this.#state = EXT;
          else if (c === 0x20 || c === 0x09) this.#state = SIZE_WS;
          else throw new BadResponseError("invalid chunk size");
          break;
        }
        case SIZE_WS:
          if (c === 0x3b) this.#state = EXT;
          else if (c === 0x0d) this.#state = SIZE_LF;
          else if (c !== 0x20 && c !== 0x09) throw new BadResponseError("invalid chunk size line");
          break;
        case EXT:
          if (c === 0x0d) this.#state = SIZE_LF;
          else if (c === 0x0a || c === 0 || ++this.#lineBytes > MAX_CHUNK_LINE) throw new BadResponseError("invalid chunk extension");
          break;
        case SIZE_LF:
          if (c !== 0x0a) throw new BadResponseError("chunk size line not ended by CRLF");
          this.#digits = 0;
          this.#lineBytes = 0;
          this.#state = this.#size === 0 ? TRAILER_START : DATA;
          break;
        case DATA_CR:
          if (c !== 0x0d) throw new BadResponseError("chunk data not followed by CRLF");
          this.#state = DATA_LF;
          break;
        case DATA_LF:
          if (c !== 0x0a) throw new BadResponseError("chunk data not followed by CRLF");
          this.#state = SIZE;
          break;
        case TRAILER_START:
          if (c === 0x0d) this.#state = END_LF;
          else if (c === 0x0a) throw new BadResponseError("bare LF in trailer section");
          else this.#state = TRAILER;
          if (++this.#trailerBytes > MAX_TRAILERS) throw new BadResponseError("trailer section too large");
          break;
        case TRAILER:
          if (c === 0x0d) this.#state = TRAILER_LF;
          else if (c === 0x0a || c === 0) throw new BadResponseError("invalid trailer line");
          if (++this.#trailerBytes > MAX_TRAILERS) throw new BadResponseError("trailer section too large");
          break;
        case TRAILER_LF:
          if (c !== 0x0a) throw new BadResponseError("trailer line not ended by CRLF");
          this.#state = TRAILER_START;
          break;
        case END_LF:
          if (c !== 0x0a) throw new BadResponseError("chunked body not ended by CRLF");
          this.#state = DONE;
          return i;
        default:
          throw new BadResponseError("data after the end of a chunked body");
      }
    }
    return -1;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
