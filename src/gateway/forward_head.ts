/**
 * The request head the gateway sends to an app: the browser's head minus
 * hop-by-hop fields and the `authorization` cookie, plus X-Forwarded-*.
 *
 * @module
 */
import type { IncomingMessage } from "node:http";
import { splitCookies, type SplitCookies } from "./auth.ts";

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
 * Builds the head sent to the app for `req`. `upgrade` keeps the Upgrade and
 * Connection fields of a websocket handshake; `chunked` announces a chunked body.
 */
export function buildForwardHead(req: IncomingMessage, host: string, facts: ForwardedFacts, chunked: boolean, upgrade: boolean): ForwardHead {
  const raw = req.rawHeaders;
  const named = connectionTokens(raw);
  const cookies: SplitCookies = { tokens: [], rest: "" };
  let head = req.method + " " + req.url + " HTTP/1.1\r\n";
  let sawCookie = false;
  let xff: string | null = null, xfProto: string | null = null, xfHost: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    const lower = name.toLowerCase();
    switch (lower) {
      case "cookie":
        splitCookies(value, cookies);
        sawCookie = true;
        continue;
      case "connection": case "keep-alive": case "proxy-connection": case "te": case "trailer":
      case "transfer-encoding": case "expect": case "upgrade":
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
    }
    // A browser may name fields in Connection, but never the ones that frame or route the request.
    if (named !== null && named.has(lower) && lower !== "host" && lower !== "content-length") continue;
    head += name + ": " + value + "\r\n";
  }
  if (sawCookie && cookies.rest !== "") head += "Cookie: " + cookies.rest + "\r\n";
  if (facts.clientAddress !== null) xff = xff === null ? facts.clientAddress : xff + ", " + facts.clientAddress;
  if (xff !== null) head += "X-Forwarded-For: " + xff + "\r\n";
  head += "X-Forwarded-Proto: " + (xfProto ?? facts.proto) + "\r\n";
  head += "X-Forwarded-Host: " + (xfHost ?? host) + "\r\n";
  if (upgrade) head += "Connection: Upgrade\r\nUpgrade: " + (req.headers.upgrade ?? "") + "\r\n";
  if (chunked) head += "Transfer-Encoding: chunked\r\n";
  return { head: head + "\r\n", tokens: cookies.tokens };
}

/** Field names listed in Connection headers (other than the keywords), lowercased; null when none. */
function connectionTokens(raw: string[]): Set<string> | null {
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length !== 10 || raw[i].toLowerCase() !== "connection") continue;
    for (const token of raw[i + 1].split(",")) {
      const t = token.trim().toLowerCase();
      if (t === "" || t === "close" || t === "keep-alive" || t === "upgrade") continue;
      (named ??= new Set()).add(t);
    }
  }
  return named;
}
