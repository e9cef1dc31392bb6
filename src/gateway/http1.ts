/**
 * The app side of HTTP/1.1: a strict parser for response heads and a chunked
 * body decoder. App sockets belong to users, so what comes back is checked as
 * carefully as what browsers send. Like the request parser, the head parser
 * scans the bytes once and cuts the head for the browser from the received
 * one, making strings only of the fields it reads.
 *
 * @module
 */

import { BadResponseError } from "../lib/errors.ts";
import { isDecimal } from "./request_head.ts";

/** Longest response head accepted from an app, in bytes. */
export const MAX_RESPONSE_HEAD = 64 * 1024;

/** Reads of at most this many bytes are decoded whole and searched as a string: one conversion instead of a search and a conversion. */
const SMALL_READ = 4096;
const CRLFCRLF = Buffer.from("\r\n\r\n");

/**
 * The head at the start of `buf[from..]`, as latin1 text without the empty
 * line that ends it (which starts at `from + text.length`), or null while
 * that line has not arrived. `scan`: how many bytes after `from` are known
 * not to hold its start.
 */
export function headText(buf: Buffer, from: number, scan: number): string | null {
  if (scan === 0 && buf.length - from <= SMALL_READ) {
    const all = buf.toString("latin1", from);
    const end = all.indexOf("\r\n\r\n");
    return end === -1 ? null : all.slice(0, end);
  }
  const end = buf.indexOf(CRLFCRLF, from + scan);
  return end === -1 ? null : buf.toString("latin1", from, end);
}

/** How the end of a response body is found (RFC 9112 section 6.3). */
export type Framing = "none" | "length" | "chunked" | "close";

/** A parsed response head. */
export interface ResponseHead {
  status: number;
  /**
   * What the browser gets of it: the status line (as HTTP/1.1) and the field
   * lines to forward, hop-by-hop fields removed, each ending with CRLF (latin1).
   */
  head: string;
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

// Character classes, one flag per latin1 code: tchar (RFC 9110 5.6.2), and a field value's characters (HTAB, SP, VCHAR, obs-text).
const TCHAR = 1, VALUE = 2;
const CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  if (alnum || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c))) CLASS[c] |= TCHAR;
  if (c === 0x09 || (c >= 0x20 && c <= 0x7e) || c >= 0x80) CLASS[c] |= VALUE;
}

/**
 * The status line and field lines of a whole head, checked in one pass of
 * the regular expression engine's native code: when it matches, the parser
 * only looks for line ends and colons; when it does not, it checks line by
 * line and names what is wrong. It is never more lenient than those checks.
 */
const HEAD_SYNTAX = /^HTTP\/1\.[01] [1-9][0-9][0-9](?: [\t\x20-\x7e\x80-\xff]*)?(?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*)*$/;

// What a response field is to the gateway, by its name.
const OTHER = 0, CONNECTION = 1, KEEP_ALIVE = 2, UPGRADE = 3, HOP = 4, TRANSFER_ENCODING = 5, CONTENT_LENGTH = 6;
/** Numbers per field line: start, colon, value start, value end, kind. */
const STRIDE = 5;

/**
 * Parses a response head (status line and header lines, without the final
 * empty line) decoded as latin1. `method` is the request's method: a HEAD
 * response has no body whatever its headers say.
 */
export function parseResponseHead(text: string, method: string): ResponseHead {
  const size = text.length;
  const checked = HEAD_SYNTAX.test(text);
  let lineEnd = text.indexOf("\r\n");
  if (lineEnd === -1) lineEnd = size;
  // HTTP/1.[01] SP [1-9][0-9][0-9] [SP reason], the reason of field-value characters.
  const d0 = text.charCodeAt(9) - 48, d1 = text.charCodeAt(10) - 48, d2 = text.charCodeAt(11) - 48;
  if (!checked) {
    const versionOk = text.startsWith("HTTP/1.") && (text.charCodeAt(7) === 48 || text.charCodeAt(7) === 49) && text.charCodeAt(8) === 32;
    let lineOk = versionOk && lineEnd >= 12 && d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9 &&
      (lineEnd === 12 || text.charCodeAt(12) === 32);
    for (let k = 13; lineOk && k < lineEnd; k++) if ((CLASS[text.charCodeAt(k)] & VALUE) === 0) lineOk = false;
    if (!lineOk) throw new BadResponseError(`invalid status line ${JSON.stringify(text.slice(0, Math.min(lineEnd, 80)))}`);
  }
  const http11 = text.charCodeAt(7) === 49;
  const status = d0 * 100 + d1 * 10 + d2;
  const lines: number[] = [];
  let connection = "";
  let transferEncoding: string | null = null;
  let contentLength: string | null = null;
  let keepAliveHeader = "";
  let upgrade: string | null = null;
  let start = lineEnd + 2;
  while (start < size) {
    let end = text.indexOf("\r\n", start);
    if (end === -1) end = size;
    const colon = text.indexOf(":", start);
    if (!checked) {
      let ok = colon > start && colon < end;
      for (let k = start; ok && k < colon; k++) if ((CLASS[text.charCodeAt(k)] & TCHAR) === 0) ok = false;
      for (let k = colon + 1; ok && k < end; k++) if ((CLASS[text.charCodeAt(k)] & VALUE) === 0) ok = false;
      if (!ok) throw new BadResponseError(`invalid header line ${JSON.stringify(text.slice(start, Math.min(end, start + 80)))}`);
    }
    let a = colon + 1, b = end;
    while (a < b && isOws(text.charCodeAt(a))) a++;
    while (b > a && isOws(text.charCodeAt(b - 1))) b--;
    const kind = fieldKind(text, start, colon);
    switch (kind) {
      case CONNECTION:
        connection += (connection ? "," : "") + text.slice(a, b).toLowerCase();
        break;
      case TRANSFER_ENCODING:
        transferEncoding = (transferEncoding === null ? "" : transferEncoding + ",") + text.slice(a, b).toLowerCase();
        break;
      case CONTENT_LENGTH: {
        const value = text.slice(a, b);
        if (contentLength !== null && contentLength !== value) throw new BadResponseError("conflicting Content-Length headers");
        contentLength = value;
        break;
      }
      case KEEP_ALIVE:
        keepAliveHeader = text.slice(a, b);
        break;
      case UPGRADE:
        upgrade = text.slice(a, b);
        break;
    }
    // One element at a time: a push of five is not inlined.
    const at = lines.length;
    lines[at] = start;
    lines[at + 1] = colon;
    lines[at + 2] = a;
    lines[at + 3] = b;
    lines[at + 4] = kind;
    start = end + 2;
  }
  let named: Set<string> | null = null;
  let keepAlive = http11;
  if (connection === "keep-alive") {
    keepAlive = true;
  } else if (connection !== "") {
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
    if (!isDecimal(contentLength)) throw new BadResponseError(`invalid Content-Length ${JSON.stringify(contentLength)}`);
    length = Number(contentLength);
    framing = length === 0 ? "none" : "length";
  } else {
    framing = "close";
  }
  if (framing === "close") keepAlive = false;

  // The head for the browser, cut from the received one: runs of lines that pass as received are one slice each.
  const dropLength = framing !== "length" && framing !== "none";
  let head: string;
  let run: number;
  if (http11 && lineEnd > 12) {
    head = "";
    run = 0;
  } else {
    head = "HTTP/1.1" + text.slice(8, lineEnd) + (lineEnd === 12 ? " \r\n" : "\r\n");
    run = -1;
  }
  for (let i = 0; i < lines.length; i += STRIDE) {
    const lineStart = lines[i], colon = lines[i + 1], from = lines[i + 2], to = lines[i + 3], kind = lines[i + 4];
    let keep = kind === OTHER || (kind === CONTENT_LENGTH && !dropLength);
    if (keep && named !== null && named.has(text.slice(lineStart, colon).toLowerCase())) keep = false;
    const end = i + STRIDE < lines.length ? lines[i + STRIDE] - 2 : size;
    if (keep && from === colon + 2 && text.charCodeAt(colon + 1) === 32 && to === end) {
      if (run === -1) run = lineStart;
      continue;
    }
    if (run !== -1) {
      head += text.slice(run, lineStart);
      run = -1;
    }
    if (keep) head += text.slice(lineStart, colon) + ": " + text.slice(from, to) + "\r\n";
  }
  if (run !== -1) head += text.slice(run) + "\r\n";
  return {
    status,
    head,
    framing,
    length,
    keepAlive,
    keepAliveTimeoutMs: keepAliveHeader === "" ? null : keepAliveTimeoutMs(keepAliveHeader),
    upgrade,
  };
}

// An app sends the same Keep-Alive field with every response: the last one read is remembered.
let lastKeepAlive = "";
let lastTimeoutMs: number | null = null;

/** The `timeout` of a Keep-Alive field value, in ms, or null. */
function keepAliveTimeoutMs(value: string): number | null {
  if (value !== lastKeepAlive) {
    const m = /(?:^|,)\s*timeout\s*=\s*([0-9]{1,6})/i.exec(value);
    lastKeepAlive = value;
    lastTimeoutMs = m === null ? null : Number(m[1]) * 1000;
  }
  return lastTimeoutMs;
}

/** The kind of the response field named text[start, end): a switch on the length, then one case-insensitive comparison. */
function fieldKind(text: string, start: number, end: number): number {
  switch (end - start) {
    case 2: return named(text, start, "te") ? HOP : OTHER;
    case 7: return named(text, start, "upgrade") ? UPGRADE : named(text, start, "trailer") ? HOP : OTHER;
    case 10: return named(text, start, "connection") ? CONNECTION : named(text, start, "keep-alive") ? KEEP_ALIVE : OTHER;
    case 14: return named(text, start, "content-length") ? CONTENT_LENGTH : OTHER;
    case 16: return named(text, start, "proxy-connection") ? HOP : OTHER;
    case 17: return named(text, start, "transfer-encoding") ? TRANSFER_ENCODING : OTHER;
    default: return OTHER;
  }
}

/** True when text at `start` spells `lower` (letters and '-'), ignoring the case of letters; the name is known to be a token. */
function named(text: string, start: number, lower: string): boolean {
  for (let k = 0; k < lower.length; k++) if ((text.charCodeAt(start + k) | 0x20) !== lower.charCodeAt(k)) return false;
  return true;
}

function isOws(c: number): boolean {
  return c === 32 || c === 9;
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
