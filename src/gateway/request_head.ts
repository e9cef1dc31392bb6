/**
 * A strict parser for browser request heads (RFC 9112), written for a
 * gateway that answers to the internet: anything a server must refuse, and
 * anything two parsers could read differently, is refused with a status and
 * a reason instead of being passed on.
 *
 * It scans the head's bytes (as a latin1 string, one character per byte)
 * once, checks every character of every line, and makes strings only of
 * what the gateway reads (method, target, Host and the framing and
 * connection fields); every other field line is recorded by its offsets, so
 * that the head sent to the app is cut from the received one.
 *
 * @module
 */
import { normalizeHost } from "./domains.ts";

/** Most header field lines a request may carry. */
export const MAX_HEADER_LINES = 100;
/** Longest request head, in bytes. */
export const MAX_REQUEST_HEAD = 16 * 1024;

/** What a field line is to the gateway, by its name (see {@link RequestHead.lines}). */
export const FieldKind = {
  /** Any field the gateway passes on unchanged. */
  other: 0,
  host: 1,
  cookie: 2,
  /** Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Expect, Upgrade, HTTP2-Settings: never forwarded as received. */
  hop: 3,
  xForwardedFor: 4,
  xForwardedProto: 5,
  xForwardedHost: 6,
  /** Forwarded and X-Real-IP: other spellings of the X-Forwarded claims. */
  claim: 7,
} as const;

/** Numbers per field line in {@link RequestHead.lines}. */
export const LINE_STRIDE = 5;

/** A parsed request head. */
export interface RequestHead {
  method: string;
  /** The request target, origin-form ("/path?query"). */
  target: string;
  /** HTTP/1.1 (else 1.0). */
  http11: boolean;
  /** The head as received (latin1, without the final empty line). */
  text: string;
  /**
   * The field lines, {@link LINE_STRIDE} numbers each: offsets in `text` of
   * the line's start, its colon, its value's start and end (without
   * surrounding whitespace) and its {@link FieldKind}. The line ends at the
   * next CRLF (or the end of `text`).
   */
  lines: number[];
  /** The request line is the one the app gets: origin-form and HTTP/1.1. */
  plainRequestLine: boolean;
  /** The authority of an absolute-form target, which stands for the Host field's value, or null. */
  authority: string | null;
  /** The Host field, normalized (lowercase, validated). */
  host: string;
  /** Content-Length, or -1 when there is none. */
  contentLength: number;
  /** The body is chunked. */
  chunked: boolean;
  /** The browser asked to close the connection after this exchange (or it is HTTP/1.0). */
  close: boolean;
  /** The protocol asked for by `Connection: upgrade` with `Upgrade`, or null. */
  upgrade: string | null;
  /** `Expect: 100-continue`. */
  expectContinue: boolean;
  /** Lowercase field names listed in Connection (hop-by-hop fields to drop), or null. */
  hopByHop: Set<string> | null;
}

/** A request to refuse: the status and a short reason for the log. */
export interface Refusal {
  status: 400 | 417 | 431 | 501 | 505;
  reason: string;
}

/** An absolute-form target: the authority, then the path and query if any. */
const ABSOLUTE_FORM = /^https?:\/\/([^/?]*)([/?].*)?$/i;

// Character classes, one flag per latin1 code: tchar (RFC 9110 5.6.2), a request target's visible ASCII,
// and a field value's characters (HTAB, SP, VCHAR, obs-text).
const TCHAR = 1, TARGET = 2, VALUE = 4;
const CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  if (alnum || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c))) CLASS[c] |= TCHAR;
  if (c >= 0x21 && c <= 0x7e) CLASS[c] |= TARGET;
  if (c === 0x09 || (c >= 0x20 && c <= 0x7e) || c >= 0x80) CLASS[c] |= VALUE;
}

/**
 * The same character rules for a whole head, checked in one pass of the
 * regular expression engine's native code: when it matches, every character
 * is known good and the parser only looks for line ends and colons; when it
 * does not, the parser checks line by line and names what is wrong. It is
 * never more lenient than those checks.
 */
const HEAD_SYNTAX = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ [\x21-\x7e]+ HTTP\/[0-9]\.[0-9](?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*)*$/;

/** True when a parse result is a refusal. */
export function isRefusal(result: RequestHead | Refusal): result is Refusal {
  return "status" in result;
}

/** Parses a request head (without the final empty line), decoded as latin1. */
export function parseRequestHead(text: string): RequestHead | Refusal {
  const size = text.length;
  const checked = HEAD_SYNTAX.test(text);
  let lineEnd = text.indexOf("\r\n");
  if (lineEnd === -1) lineEnd = size;
  // The request line: tchar+ SP VCHAR+ SP "HTTP/" DIGIT "." DIGIT, and nothing else.
  let methodEnd: number, targetEnd: number;
  if (checked) {
    methodEnd = text.indexOf(" ");
    targetEnd = lineEnd - 9;
  } else {
    let i = 0;
    while (i < lineEnd && (CLASS[text.charCodeAt(i)] & TCHAR) !== 0) i++;
    methodEnd = i;
    if (methodEnd === 0 || text.charCodeAt(i) !== 32) return { status: 400, reason: "malformed request line" };
    i++;
    while (i < lineEnd && (CLASS[text.charCodeAt(i)] & TARGET) !== 0) i++;
    targetEnd = i;
    if (targetEnd === methodEnd + 1 || lineEnd - targetEnd !== 9 || !text.startsWith(" HTTP/", targetEnd) ||
      !isDigit(text.charCodeAt(lineEnd - 3)) || text.charCodeAt(lineEnd - 2) !== 46 || !isDigit(text.charCodeAt(lineEnd - 1))) {
      return { status: 400, reason: "malformed request line" };
    }
  }
  const major = text.charCodeAt(lineEnd - 3) - 48, minor = text.charCodeAt(lineEnd - 1) - 48;
  if (major !== 1) return { status: 505, reason: `HTTP/${major}.${minor} is not supported` };
  const method = methodName(text, methodEnd);
  let target = text.slice(methodEnd + 1, targetEnd);
  // RFC 9112 2.3: a higher minor version is read as the highest one known, 1.1.
  const http11 = minor !== 0;
  if (method === "CONNECT") return { status: 501, reason: "CONNECT is not supported" };
  if (target.includes("#")) return { status: 400, reason: "request target with a fragment" };
  // RFC 9112 3.2.2: a server must accept the absolute form; its authority replaces the Host field.
  let authority: string | null = null;
  if (target.charCodeAt(0) !== 47 /* / */) {
    const abs = ABSOLUTE_FORM.exec(target);
    if (abs === null) return { status: 400, reason: "request target must be a path or an absolute http(s) URI" };
    authority = abs[1];
    target = abs[2] === undefined ? "/" : abs[2].charCodeAt(0) === 63 /* ? */ ? "/" + abs[2] : abs[2];
  }

  const lines: number[] = [];
  let host: string | null = null;
  let hosts = 0;
  let contentLength: string | null = null;
  let lengths = 0;
  let transferEncoding: string | null = null;
  let codings = 0;
  let connection = "";
  let upgrade: string | null = null;
  let expect: string | null = null;
  let start = lineEnd + 2;
  while (start < size) {
    let end = text.indexOf("\r\n", start);
    if (end === -1) end = size;
    if (lines.length >= LINE_STRIDE * MAX_HEADER_LINES) return { status: 431, reason: `more than ${MAX_HEADER_LINES} header lines` };
    const colon = text.indexOf(":", start);
    if (!checked) {
      if (colon === start || colon === -1 || colon >= end) {
        const first = text.charCodeAt(start);
        return { status: 400, reason: first === 32 || first === 9 ? "obsolete line folding" : "malformed header line" };
      }
      for (let k = start; k < colon; k++) if ((CLASS[text.charCodeAt(k)] & TCHAR) === 0) return INVALID_CHARACTER;
      for (let k = colon + 1; k < end; k++) if ((CLASS[text.charCodeAt(k)] & VALUE) === 0) return INVALID_CHARACTER;
    }
    let a = colon + 1, b = end;
    while (a < b && isOws(text.charCodeAt(a))) a++;
    while (b > a && isOws(text.charCodeAt(b - 1))) b--;
    const kind = fieldKind(text, start, colon);
    switch (kind) {
      case FieldKind.host:
        hosts++;
        host = text.slice(a, b);
        break;
      case KIND_EXPECT:
        expect = text.slice(a, b).toLowerCase();
        break;
      case KIND_UPGRADE:
        upgrade = text.slice(a, b);
        break;
      case KIND_CONNECTION:
        connection += (connection === "" ? "" : ",") + text.slice(a, b).toLowerCase();
        break;
      case KIND_CONTENT_LENGTH:
        lengths++;
        contentLength = text.slice(a, b);
        break;
      case KIND_TRANSFER_ENCODING:
        codings++;
        transferEncoding = text.slice(a, b);
        break;
    }
    // One element at a time: a push of five is not inlined.
    const at = lines.length;
    lines[at] = start;
    lines[at + 1] = colon;
    lines[at + 2] = a;
    lines[at + 3] = b;
    lines[at + 4] = kind >= KIND_CONTENT_LENGTH ? FieldKind.other : kind > FieldKind.claim ? FieldKind.hop : kind;
    start = end + 2;
  }
  if (hosts !== 1 || host === null) return { status: 400, reason: hosts === 0 ? "no Host header" : "more than one Host header" };
  let normalized = normalizedHost(host);
  if (normalized === null) return { status: 400, reason: "invalid Host header" };
  if (authority !== null) {
    normalized = normalizeHost(authority);
    if (normalized === null) return { status: 400, reason: "invalid host in the request target" };
  }

  let length = -1;
  let chunked = false;
  if (codings > 0) {
    if (!http11) return { status: 400, reason: "Transfer-Encoding in an HTTP/1.0 request" };
    if (lengths > 0) return { status: 400, reason: "both Content-Length and Transfer-Encoding" };
    if (codings > 1 || transferEncoding!.toLowerCase() !== "chunked") return { status: 501, reason: "only the chunked transfer coding is supported" };
    chunked = true;
  } else if (lengths > 0) {
    if (lengths > 1 || !isDecimal(contentLength!)) return { status: 400, reason: "invalid Content-Length" };
    length = Number(contentLength);
  }

  let close = !http11;
  let wantsUpgrade = false;
  let hopByHop: Set<string> | null = null;
  if (connection === "keep-alive") {
    close = false;
  } else if (connection !== "") {
    for (const raw of connection.split(",")) {
      const token = raw.trim();
      if (token === "close") close = true;
      else if (token === "keep-alive") { if (!http11) close = false; }
      else if (token === "upgrade") wantsUpgrade = true;
      else if (token !== "" && token !== "host" && token !== "content-length" && token !== "transfer-encoding") {
        // A browser may name fields in Connection, but never the ones that frame or route the request.
        (hopByHop ??= new Set()).add(token);
      }
    }
  }
  if (expect !== null && expect !== "100-continue") return { status: 417, reason: "only Expect: 100-continue is supported" };
  return {
    method,
    target,
    http11,
    text,
    lines,
    plainRequestLine: authority === null && minor === 1,
    authority,
    host: normalized,
    contentLength: length,
    chunked,
    close,
    upgrade: wantsUpgrade && upgrade !== null && http11 ? upgrade : null,
    expectContinue: expect === "100-continue" && http11,
    hopByHop,
  };
}

/** True when the request has a body to read. */
export function hasBody(head: RequestHead): boolean {
  return head.chunked || head.contentLength > 0;
}

/** The value of the first field line of `kind`, or null. */
export function fieldValue(head: RequestHead, kind: number): string | null {
  const lines = head.lines;
  for (let i = 0; i < lines.length; i += LINE_STRIDE) {
    if (lines[i + 4] === kind) return head.text.slice(lines[i + 2], lines[i + 3]);
  }
  return null;
}

/** The name of field line `i` (an index into {@link RequestHead.lines}), lowercase. */
export function lowerName(head: RequestHead, i: number): string {
  return head.text.slice(head.lines[i], head.lines[i + 1]).toLowerCase();
}

const INVALID_CHARACTER: Refusal = { status: 400, reason: "invalid character in a header line" };

// Kinds the parser reads itself; they map to FieldKind.hop (Expect, Upgrade, Connection) or FieldKind.other.
const KIND_EXPECT = 8, KIND_UPGRADE = 9, KIND_CONNECTION = 10, KIND_CONTENT_LENGTH = 11, KIND_TRANSFER_ENCODING = 12;

/** The kind of the field named text[start, end): a switch on the length, then one case-insensitive comparison. */
function fieldKind(text: string, start: number, end: number): number {
  switch (end - start) {
    case 2: return named(text, start, "te") ? FieldKind.hop : FieldKind.other;
    case 4: return named(text, start, "host") ? FieldKind.host : FieldKind.other;
    case 6: return named(text, start, "cookie") ? FieldKind.cookie : named(text, start, "expect") ? KIND_EXPECT : FieldKind.other;
    case 7: return named(text, start, "upgrade") ? KIND_UPGRADE : named(text, start, "trailer") ? FieldKind.hop : FieldKind.other;
    case 9: return named(text, start, "forwarded") || named(text, start, "x-real-ip") ? FieldKind.claim : FieldKind.other;
    case 10: return named(text, start, "connection") ? KIND_CONNECTION : named(text, start, "keep-alive") ? FieldKind.hop : FieldKind.other;
    case 14: return named(text, start, "content-length") ? KIND_CONTENT_LENGTH : named(text, start, "http2-settings") ? FieldKind.hop : FieldKind.other;
    case 15: return named(text, start, "x-forwarded-for") ? FieldKind.xForwardedFor : FieldKind.other;
    case 16: return named(text, start, "x-forwarded-host") ? FieldKind.xForwardedHost : named(text, start, "proxy-connection") ? FieldKind.hop : FieldKind.other;
    case 17: return named(text, start, "transfer-encoding") ? KIND_TRANSFER_ENCODING : named(text, start, "x-forwarded-proto") ? FieldKind.xForwardedProto : FieldKind.other;
    default: return FieldKind.other;
  }
}

/** True when text at `start` spells `lower` (letters, digits and '-'), ignoring the case of letters. */
function named(text: string, start: number, lower: string): boolean {
  for (let k = 0; k < lower.length; k++) {
    // Setting bit 0x20 lowercases a letter; among tchars, only a letter maps onto a letter, and '-' onto itself.
    if ((text.charCodeAt(start + k) | 0x20) !== lower.charCodeAt(k)) return false;
  }
  return true;
}

// A browser sends the same Host with every request: the last one normalized is remembered.
let lastHost = "";
let lastNormalized: string | null = null;

/** {@link normalizeHost}, remembering the last answer. */
function normalizedHost(value: string): string | null {
  if (value !== lastHost) {
    lastNormalized = normalizeHost(value);
    lastHost = value;
  }
  return lastNormalized;
}

/** True for 1 to 15 ASCII digits (a Content-Length the gateway takes). */
export function isDecimal(value: string): boolean {
  if (value.length === 0 || value.length > 15) return false;
  for (let i = 0; i < value.length; i++) if (!isDigit(value.charCodeAt(i))) return false;
  return true;
}

/** The method, without a new string for the common ones. */
function methodName(text: string, end: number): string {
  switch (end) {
    case 3: if (text.startsWith("GET")) return "GET"; if (text.startsWith("PUT")) return "PUT"; break;
    case 4: if (text.startsWith("POST")) return "POST"; if (text.startsWith("HEAD")) return "HEAD"; break;
  }
  return text.slice(0, end);
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isOws(c: number): boolean {
  return c === 32 || c === 9;
}
