/**
 * Checks on a parsed request head that RFC 9112 requires of a server and
 * Node's parser (llhttp) lets through: one valid Host, a transfer coding we
 * understand, no Transfer-Encoding in HTTP/1.0, origin-form targets only, a
 * bounded number of header lines.
 *
 * @module
 */
import type { IncomingMessage } from "node:http";
import { normalizeHost } from "./domains.ts";

/** Most header lines a request may carry. */
export const MAX_HEADER_LINES = 100;

/** A refused request: status and a short reason for the log and the page. */
export interface Refusal {
  status: 400 | 431 | 501 | 505;
  reason: string;
}

/** The request's facts the gateway needs after the checks. */
export interface CheckedRequest {
  /** Normalized (lowercase, validated) Host. */
  host: string;
  /** The body is chunked (`Transfer-Encoding: chunked`). */
  chunked: boolean;
}

/** Returns the checked facts of `req`, or a {@link Refusal} saying why it must be refused. */
export function checkRequest(req: IncomingMessage): CheckedRequest | Refusal {
  const version = req.httpVersion;
  if (version !== "1.1" && version !== "1.0") return { status: 505, reason: `HTTP/${version} is not supported` };
  const raw = req.rawHeaders;
  if (raw.length > 2 * MAX_HEADER_LINES) return { status: 431, reason: `more than ${MAX_HEADER_LINES} header lines` };
  let host: string | null = null;
  let hosts = 0;
  let te: string | null = null;
  let tes = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    // Cheap length filter before the case-insensitive comparison.
    if (name.length === 4 && name.toLowerCase() === "host") {
      hosts++;
      host = raw[i + 1];
    } else if (name.length === 17 && name.toLowerCase() === "transfer-encoding") {
      tes++;
      te = raw[i + 1];
    }
  }
  if (hosts !== 1 || host === null) return { status: 400, reason: hosts === 0 ? "no Host header" : "more than one Host header" };
  const normalized = normalizeHost(host);
  if (normalized === null) return { status: 400, reason: "invalid Host header" };
  const url = req.url ?? "";
  if (url.charCodeAt(0) !== 47 /* / */ || url.includes("#")) {
    return { status: 400, reason: "request target must be a path (origin-form)" };
  }
  let chunked = false;
  if (tes > 0) {
    if (version === "1.0") return { status: 400, reason: "Transfer-Encoding in an HTTP/1.0 request" };
    if (tes > 1 || te === null || te.trim().toLowerCase() !== "chunked") {
      return { status: 501, reason: "only the chunked transfer coding is supported" };
    }
    chunked = true;
  }
  return { host: normalized, chunked };
}

/** True when a {@link checkRequest} result is a refusal. */
export function isRefusal(result: CheckedRequest | Refusal): result is Refusal {
  return "status" in result;
}
