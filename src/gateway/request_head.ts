/**
 * A strict parser for browser request heads (RFC 9112), written for a
 * gateway that answers to the internet: anything a server must refuse, and
 * anything two parsers could read differently, is refused with a status and
 * a reason instead of being passed on.
 *
 * @module
 */
import { normalizeHost } from "./domains.ts";
import { trimOws } from "./http1.ts";

/** Most header field lines a request may carry. */
export const MAX_HEADER_LINES = 100;
/** Longest request head, in bytes. */
export const MAX_REQUEST_HEAD = 16 * 1024;

/** A parsed request head. */
export interface RequestHead {
  method: string;
  /** The request target, origin-form ("/path?query"). */
  target: string;
  /** HTTP/1.1 (else 1.0). */
  http11: boolean;
  /** Field lines as `[name, value, ...]` in order, values without surrounding whitespace. */
  fields: string[];
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
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP\/([0-9])\.([0-9])$/;
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** True when a parse result is a refusal. */
export function isRefusal(result: RequestHead | Refusal): result is Refusal {
  return "status" in result;
}

/** Parses a request head (without the final empty line), decoded as latin1. */
export function parseRequestHead(text: string): RequestHead | Refusal {
  let lineEnd = text.indexOf("\r\n");
  if (lineEnd === -1) lineEnd = text.length;
  const m = REQUEST_LINE.exec(text.slice(0, lineEnd));
  if (m === null) return { status: 400, reason: "malformed request line" };
  if (m[3] !== "1") return { status: 505, reason: `HTTP/${m[3]}.${m[4]} is not supported` };
  const method = m[1];
  let target = m[2];
  // RFC 9112 2.3: a higher minor version is read as the highest one known, 1.1.
  const http11 = m[4] !== "0";
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

  const fields: string[] = [];
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
  while (start < text.length) {
    let end = text.indexOf("\r\n", start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 2;
    if (fields.length >= 2 * MAX_HEADER_LINES) return { status: 431, reason: `more than ${MAX_HEADER_LINES} header lines` };
    const colon = line.indexOf(":");
    if (colon <= 0) return { status: 400, reason: line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9 ? "obsolete line folding" : "malformed header line" };
    const name = line.slice(0, colon);
    const value = trimOws(line, colon + 1);
    if (!FIELD_NAME.test(name) || !FIELD_VALUE.test(value)) return { status: 400, reason: "invalid character in a header line" };
    fields.push(name, value);
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === "host") { hosts++; host = value; }
        break;
      case 6:
        if (name.toLowerCase() === "expect") expect = value.toLowerCase();
        break;
      case 7:
        if (name.toLowerCase() === "upgrade") upgrade = value;
        break;
      case 10:
        if (name.toLowerCase() === "connection") connection += (connection === "" ? "" : ",") + value.toLowerCase();
        break;
      case 14:
        if (name.toLowerCase() === "content-length") { lengths++; contentLength = value; }
        break;
      case 17:
        if (name.toLowerCase() === "transfer-encoding") { codings++; transferEncoding = value; }
        break;
    }
  }
  if (hosts !== 1 || host === null) return { status: 400, reason: hosts === 0 ? "no Host header" : "more than one Host header" };
  let normalized = normalizeHost(host);
  if (normalized === null) return { status: 400, reason: "invalid Host header" };
  if (authority !== null) {
    for (let i = 0; i < fields.length; i += 2) if (fields[i].length === 4 && fields[i].toLowerCase() === "host") fields[i + 1] = authority;
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
    if (lengths > 1 || !/^[0-9]{1,15}$/.test(contentLength!)) return { status: 400, reason: "invalid Content-Length" };
    length = Number(contentLength);
  }

  let close = !http11;
  let wantsUpgrade = false;
  let hopByHop: Set<string> | null = null;
  if (connection !== "") {
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
    fields,
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
