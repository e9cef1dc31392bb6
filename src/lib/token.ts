/**
 * Route tokens, what the client and the gateway share: generation, the
 * wire hash (hex blake2b-512, as Python's `hashlib.blake2b().hexdigest()`),
 * and what a cookie can carry. The gateway's check of a browser's cookie is
 * in `gateway/auth.ts`.
 *
 * @module
 */
import { createHash, randomInt } from "node:crypto";

const TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** A hex blake2b-512 digest is 128 lowercase hex characters. */
export const AUTH_HASH_RE = /^[0-9a-f]{128}$/;

/** Returns a fresh token of `length` characters from [a-z0-9], drawn with node:crypto. */
export function generateToken(length = 32): string {
  let token = "";
  for (let i = 0; i < length; i++) token += TOKEN_ALPHABET[randomInt(TOKEN_ALPHABET.length)];
  return token;
}

/** Characters a cookie value may hold unquoted (RFC 6265 cookie-octet), 1 to 4096 of them. */
export const COOKIE_SAFE_RE = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,4096}$/;

/** Fewest characters of a token given by the user: it guards an app against the whole internet. */
export const MIN_TOKEN_LENGTH = 16;

/** Why `token` cannot guard an app (to follow "CONDUCTOR_TOKEN"), or null when it can. */
export function tokenProblem(token: string): string | null {
  if (token.length === 0) return "is set but empty";
  if (token.length < MIN_TOKEN_LENGTH) return `has ${token.length} characters, too few to guard an app`;
  if (!COOKIE_SAFE_RE.test(token)) return "holds characters a browser cookie cannot carry (space, quote, comma, semicolon, backslash or non-ASCII)";
  return null;
}

/** Hex blake2b-512 of a token: what the client sends as `auth` and the gateway stores. */
export function hashToken(token: string): string {
  return createHash("blake2b512").update(token, "utf8").digest("hex");
}
