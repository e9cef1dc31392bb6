/**
 * The request head the gateway sends to an app: the browser's head minus
 * hop-by-hop fields and the `authorization` cookie, plus X-Forwarded-*.
 *
 * @module
 */
import { splitCookies, type SplitCookies } from "./auth.ts";
import type { RequestHead } from "./request_head.ts";

/** How the gateway fills X-Forwarded-For, -Proto and -Host. */
export interface ForwardedFacts {
  /** The browser's address, or null when unknown (listening on a UNIX socket). */
  clientAddress: string | null;
  /** "https" when the browser connection is TLS. */
  proto: "http" | "https";
  /**
   * Keep X-Forwarded-* from the request (a reverse proxy in front set them)
   * instead of replacing them.
   */
  trustForwarded: boolean;
}

/** The forwarded head and the auth tokens found in its cookies. */
export interface ForwardHead {
  /** Request line and header lines, ending with the empty line, latin1. */
  head: string;
  /** Values of `authorization` cookies, to check against the route. */
  tokens: string[];
}

/**
 * Builds the head sent to the app for `request`. With `upgrade`, the Upgrade
 * and Connection fields of a websocket handshake are kept. Framing fields
 * (Content-Length, Transfer-Encoding: chunked) pass unchanged: the body is
 * forwarded as received.
 */
export function buildForwardHead(request: RequestHead, facts: ForwardedFacts, upgrade: boolean): ForwardHead {
  const fields = request.fields;
  const named = request.hopByHop;
  const cookies: SplitCookies = { tokens: [], rest: "" };
  let head = request.method + " " + request.target + " HTTP/1.1\r\n";
  let sawCookie = false;
  let xff: string | null = null, xfProto: string | null = null, xfHost: string | null = null;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    const lower = name.toLowerCase();
    switch (lower) {
      case "cookie":
        splitCookies(value, cookies);
        sawCookie = true;
        continue;
      case "connection": case "keep-alive": case "proxy-connection": case "te": case "trailer":
      case "expect": case "upgrade": case "http2-settings":
        continue;
      case "x-forwarded-for":
        if (facts.trustForwarded) xff = xff === null ? value : xff + ", " + value;
        continue;
      case "x-forwarded-proto":
        if (facts.trustForwarded && xfProto === null) xfProto = value;
        continue;
      case "x-forwarded-host":
        if (facts.trustForwarded && xfHost === null) xfHost = value;
        continue;
      case "forwarded": case "x-real-ip":
        // Other spellings of the same claims: an app may believe them, so only a trusted proxy's pass.
        if (facts.trustForwarded) break;
        continue;
    }
    if (named !== null && named.has(lower)) continue;
    head += name + ": " + value + "\r\n";
  }
  if (sawCookie && cookies.rest !== "") head += "Cookie: " + cookies.rest + "\r\n";
  if (facts.clientAddress !== null) xff = xff === null ? facts.clientAddress : xff + ", " + facts.clientAddress;
  if (xff !== null) head += "X-Forwarded-For: " + xff + "\r\n";
  head += "X-Forwarded-Proto: " + (xfProto ?? facts.proto) + "\r\n";
  head += "X-Forwarded-Host: " + (xfHost ?? request.host) + "\r\n";
  if (upgrade) head += "Connection: Upgrade\r\nUpgrade: " + request.upgrade + "\r\n";
  return { head: head + "\r\n", tokens: cookies.tokens };
}

/**
 * Whether the browser came over HTTPS: to the gateway itself, or, with
 * `trustForwarded`, to the reverse proxy that says so in X-Forwarded-Proto.
 */
export function browserUsedTls(request: RequestHead, ownTls: boolean, trustForwarded: boolean): boolean {
  if (ownTls) return true;
  if (!trustForwarded) return false;
  const fields = request.fields;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i].toLowerCase() === "x-forwarded-proto") return fields[i + 1].toLowerCase() === "https";
  }
  return false;
}
