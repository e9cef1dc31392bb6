/**
 * Route tokens: generation, the wire hash (hex blake2b-512, as Python's
 * `hashlib.blake2b().hexdigest()`), and constant-time comparison.
 *
 * @module
 */
import { createHash, randomInt, timingSafeEqual } from "node:crypto";

const TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** A hex blake2b-512 digest is 128 lowercase hex characters. */
export const AUTH_HASH_RE = /^[0-9a-f]{128}$/;

/** Returns a fresh token of `length` characters from [a-z0-9], drawn with node:crypto. */
export function generateToken(length = 32): string {
  let token = "";
  for (let i = 0; i < length; i++) token += TOKEN_ALPHABET[randomInt(TOKEN_ALPHABET.length)];
  return token;
}

/** Hex blake2b-512 of a token: what the client sends as `auth` and the gateway stores. */
export function hashToken(token: string): string {
  return createHash("blake2b512").update(token, "utf8").digest("hex");
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
