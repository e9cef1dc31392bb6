/**
 * Browser authorization: the `authorization` cookie, the auth link that sets
 * it, and the redirect target after it.
 *
 * @module
 */
import { COOKIE_SAFE_RE } from "../lib/token.ts";

/** Name of the cookie that carries a route's token. */
export const AUTH_COOKIE = "authorization";

/** True when `token` can be stored in a cookie as is. */
export function isCookieSafe(token: string): boolean {
  return COOKIE_SAFE_RE.test(token);
}

/** The cookie header pairs of one request, split into auth tokens and everything else. */
export interface SplitCookies {
  /** Values of every `authorization` cookie (a sibling site may have tossed one in). */
  tokens: string[];
  /** The other pairs, unchanged and in order, joined by "; "; empty when none remain. */
  rest: string;
}

/** Splits a `Cookie` header value into the auth tokens and the remaining pairs. */
export function splitCookies(header: string, into: SplitCookies = { tokens: [], rest: "" }): SplitCookies {
  let start = 0;
  while (start <= header.length) {
    let end = header.indexOf(";", start);
    if (end === -1) end = header.length;
    const pair = header.slice(start, end).trim();
    start = end + 1;
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const name = eq === -1 ? pair : pair.slice(0, eq).trimEnd();
    if (name === AUTH_COOKIE) {
      let value = eq === -1 ? "" : pair.slice(eq + 1).trimStart();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      into.tokens.push(value);
    } else {
      into.rest = into.rest === "" ? pair : into.rest + "; " + pair;
    }
  }
  return into;
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
