/**
 * Browser authorization, all of it: the `authorization` cookie and its check
 * against a route's token hash, the auth link that sets the cookie
 * (`/_conductor/auth/<token>?next=<path>`), and the redirect after it.
 * Hashing tokens is shared with the client and lives in `lib/token.ts`.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Logger } from "../lib/log.ts";
import { COOKIE_SAFE_RE } from "../lib/token.ts";
import type { BrowserConnection } from "./connection.ts";
import { FieldKind, fieldValue, LINE_STRIDE, type RequestHead } from "./request_head.ts";
import type { Route } from "./routes.ts";

/** Name of the cookie that carries a route's token. */
export const AUTH_COOKIE = "authorization";

/** Path prefix of the auth link; the token follows it. */
export const AUTH_PATH = "/_conductor/auth/";

/** True when `token` can be stored in a cookie as is. */
export function isCookieSafe(token: string): boolean {
  return COOKIE_SAFE_RE.test(token);
}

/**
 * The token a browser connection last proved, and for which token hash: a
 * keep-alive connection's next request with the same cookie is let through
 * without hashing it again. It holds only what that connection itself sent,
 * so comparing with it leaks nothing to anyone else.
 */
export class AuthMemo {
  token: string | null = null;
  hash: Buffer | null = null;
}

/**
 * True when one of the request's `authorization` cookies holds the route's
 * token (a sibling site may have tossed in others); `memo` is the browser
 * connection's, updated when a token is proved.
 */
export function authorized(head: RequestHead, route: Route, memo: AuthMemo): boolean {
  const { text, lines } = head;
  const hash = route.authHash;
  for (let i = 0; i < lines.length; i += LINE_STRIDE) {
    if (lines[i + 4] !== FieldKind.cookie) continue;
    const to = lines[i + 3];
    for (let start = lines[i + 2]; start <= to;) {
      const end = pairEnd(text, start, to);
      const token = authValue(text, start, end);
      start = end + 1;
      if (token === null) continue;
      if (memo.hash === hash && memo.token === token) return true;
      if (tokenMatches(token, hash)) {
        memo.token = token;
        memo.hash = hash;
        return true;
      }
    }
  }
  return false;
}

/**
 * Appends to `rest` the cookie pairs of the Cookie value `text[from, to)`
 * other than `authorization`, unchanged and in order, joined by "; ", and
 * returns it.
 */
export function cookiesWithoutAuth(text: string, from: number, to: number, rest: string): string {
  for (let start = from; start <= to;) {
    const end = pairEnd(text, start, to);
    let a = start, b = end;
    while (a < b && isSpace(text.charCodeAt(a))) a++;
    while (b > a && isSpace(text.charCodeAt(b - 1))) b--;
    start = end + 1;
    if (a === b || authValue(text, a, b) !== null) continue;
    rest = rest === "" ? text.slice(a, b) : rest + "; " + text.slice(a, b);
  }
  return rest;
}

/** The end of the cookie pair that starts at `start`: the next ';' before `to`, or `to`. */
function pairEnd(text: string, start: number, to: number): number {
  const semi = text.indexOf(";", start);
  return semi === -1 || semi > to ? to : semi;
}

/**
 * The value of the pair `text[start, end)` when its name is `authorization`
 * (whitespace around name and value ignored, surrounding quotes removed),
 * else null.
 */
function authValue(text: string, start: number, end: number): string | null {
  let a = start;
  while (a < end && isSpace(text.charCodeAt(a))) a++;
  if (!text.startsWith(AUTH_COOKIE, a) || a + AUTH_COOKIE.length > end) return null;
  let i = a + AUTH_COOKIE.length;
  while (i < end && isSpace(text.charCodeAt(i))) i++;
  if (i < end && text.charCodeAt(i) !== 61 /* = */) return null;
  if (i === end) return "";
  let from = i + 1, to = end;
  while (from < to && isSpace(text.charCodeAt(from))) from++;
  while (to > from && isSpace(text.charCodeAt(to - 1))) to--;
  if (to - from >= 2 && text.charCodeAt(from) === 34 && text.charCodeAt(to - 1) === 34) { from++; to--; }
  return text.slice(from, to);
}

/** Whitespace that String.prototype.trim() removes, among the characters a field value may hold. */
function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 0xa0;
}

/** Digests of recently seen tokens: browsers send the same cookie on every request. */
const digests = new Map<string, Buffer>();
const DIGEST_CACHE_ENTRIES = 4096;
const DIGEST_CACHE_TOKEN_LENGTH = 256;

/** True when `token` hashes to `hash` (64 raw bytes); constant time in the hash comparison. */
export function tokenMatches(token: string, hash: Buffer): boolean {
  let digest = digests.get(token);
  if (digest === undefined) {
    digest = createHash("blake2b512").update(token, "utf8").digest();
    if (token.length <= DIGEST_CACHE_TOKEN_LENGTH) {
      if (digests.size >= DIGEST_CACHE_ENTRIES) digests.clear();
      digests.set(token, digest);
    }
  }
  return digest.length === hash.length && timingSafeEqual(digest, hash);
}

/** The `Set-Cookie` value for a token: HttpOnly, Path=/, SameSite=Lax, and Secure over TLS. */
export function authCookie(token: string, secure: boolean): string {
  return `${AUTH_COOKIE}=${token}; HttpOnly; Path=/; SameSite=Lax${secure ? "; Secure" : ""}`;
}

/**
 * The redirect target after the auth link: `next` when it is a same-origin
 * path ("/lab?x=1"), else "/". Refuses scheme-relative ("//host"), backslash
 * and control-character tricks, so the link is never an open redirect.
 */
export function safeNext(next: string | null): string {
  if (next === null || next.length === 0 || next.length > 2048) return "/";
  if (next.charCodeAt(0) !== 47 /* / */) return "/";
  // Printable ASCII only, no backslash (browsers read "\" as "/"), not "//".
  if (!/^\/(?!\/)[\x21-\x5b\x5d-\x7e]*$/.test(next)) return "/";
  return next;
}

/** What the auth link handler needs to know of the front end. */
export interface AuthLinkContext {
  logger: Logger;
  /** The browser connection is TLS. */
  secure: boolean;
  /** X-Forwarded-Proto comes from a trusted reverse proxy. */
  trustForwarded: boolean;
}

/**
 * Answers the auth link `path` (which starts with {@link AUTH_PATH}) for
 * `route`, the route of the request's Host: sets the cookie and redirects
 * when the link's token opens that route; answers 403 with a page that says
 * so, leaving any cookie the browser holds untouched, when it does not; 400
 * when the token cannot be a cookie. The caller answers a Host without a
 * route.
 */
export function serveAuthLink(ctx: AuthLinkContext, conn: BrowserConnection, head: RequestHead, route: Route, path: string, query: string | null): void {
  let token: string;
  try {
    token = decodeURIComponent(path.slice(AUTH_PATH.length));
  } catch {
    token = "";
  }
  if (!isCookieSafe(token)) return conn.sendPage(400);
  if (!tokenMatches(token, route.authHash)) {
    // A mistyped or another app's link must not log the browser out of this app.
    ctx.logger.debug("auth link with a token not this route's", { host: head.host });
    return conn.sendPage(403, false, wrongLinkPage());
  }
  const location = safeNext(query === null ? null : new URLSearchParams(query).get("next"));
  ctx.logger.debug("auth link used", { host: head.host });
  conn.respond(302, "Found", [
    ["Location", location],
    // Behind a TLS-terminating proxy the cookie must be Secure too.
    ["Set-Cookie", authCookie(token, browserUsedTls(head, ctx.secure, ctx.trustForwarded))],
    ["Cache-Control", "no-store"],
    ["Referrer-Policy", "no-referrer"],
    ["Content-Type", "text/plain; charset=utf-8"],
  ], "Follow the white rabbit to " + location + "\n");
}

/**
 * Whether the browser came over HTTPS: to the gateway itself, or, with
 * `trustForwarded`, to the reverse proxy that says so in X-Forwarded-Proto.
 */
export function browserUsedTls(head: RequestHead, ownTls: boolean, trustForwarded: boolean): boolean {
  if (ownTls) return true;
  if (!trustForwarded) return false;
  return fieldValue(head, FieldKind.xForwardedProto)?.toLowerCase() === "https";
}

let wrongLinkBody: Buffer | null = null;

/** The page for an auth link whose token does not open the app at its address. */
function wrongLinkPage(): Buffer {
  wrongLinkBody ??= Buffer.from("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>403 Forbidden</title></head>" +
    "<body><h1>403 Forbidden</h1><p>The token in this link is not the token of the app at this address, so the link set no cookie " +
    "(a cookie this browser already holds for this address is kept). Check the link: open the auth link conductor printed for this app " +
    "(the auth link of the <code>live</code> event, or <code>conductor show NAME</code>).</p><hr><p>conductor</p></body></html>\n");
  return wrongLinkBody;
}
