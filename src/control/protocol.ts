/**
 * The control socket's wire protocol: JSON lines, UTF-8, one object per line,
 * compatible with the original Python conductor in both directions.
 *
 * - server → client on connect: `{"status": "ok", "directory": "<absolute path>"}` (this
 *   gateway adds `"version"` and `"domains"`, its domain patterns, which old clients ignore)
 * - client → server: `{"auth": "<hex blake2b-512 of the token>", "key": "<key>"}`
 * - server → client: `{"status": "ok", "urls": [...]}` or `{"status": "error", "reason": "..."}`
 * - then the connection is held open; EOF from either side ends the registration.
 *
 * Extensions carry an `"op"` field; a message without `op` is the original registration.
 * After an ok reply that says `"activity": true`, the server sends
 * `{"op": "activity", "idle": SECONDS}` when browsers used the app (at most once a
 * second), and `{"op": "close", "reason": "..."}` before it closes a route itself
 * (--max-idle); clients that do not know these lines ignore them.
 *
 * A registration with `"kind": "tcp"` (and optionally `"port": N`) asks for a
 * TCP stream instead of a route; its ok reply adds `"address": "HOST:PORT"`
 * and `"port": N`. A server that answers without them publishes no streams.
 *
 * @module
 */
import { ConductorError } from "../lib/errors.ts";
import { AUTH_HASH_RE, hashToken } from "../lib/token.ts";

const EMPTY_TOKEN_HASH = hashToken("");

/** Longest line either side accepts, in bytes. */
export const MAX_LINE_BYTES = 64 * 1024;

/**
 * The line a client sends before it closes a live registration on purpose
 * (an extension): the gateway then removes the route at once, instead of
 * keeping it for the client's return.
 */
export const GOODBYE = encodeLine({ op: "close" });

/** The key a config without `key` gets, as the original server does. */
export const DEFAULT_KEY = "none";

/** First line from the server. */
export interface Banner {
  status: "ok";
  directory: string;
}

/** The client's registration, as decoded and validated by the server. */
export interface RegisterRequest {
  /** Hex blake2b-512 of the route's token, lowercase. */
  auth: string;
  /** Route key, lowercased. */
  key: string;
  /** Registry name of the service (an extension field; the key when absent). */
  name: string;
}

/** The server's answer to a registration; `activity`: the gateway reports browser activity (an extension). */
export type Reply =
  | { status: "ok"; urls: string[]; scheme: "http" | "https"; activity: boolean; address?: string; port?: number }
  | { status: "error"; reason: string; code?: string };

/** A JSON value as the protocol carries it. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/**
 * Encodes one message as a line the way Python's `json.dumps` does by default
 * (`", "` and `": "` separators, non-ASCII escaped), newline included.
 */
export function encodeLine(message: { [key: string]: Json }): string {
  return encodePython(message) + "\n";
}

function encodePython(value: Json): string {
  if (Array.isArray(value)) return "[" + value.map(encodePython).join(", ") + "]";
  if (value !== null && typeof value === "object") {
    return "{" + Object.entries(value).map(([k, v]) => asciiJson(k) + ": " + encodePython(v)).join(", ") + "}";
  }
  return typeof value === "string" ? asciiJson(value) : JSON.stringify(value);
}

function asciiJson(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/** Parses one line into a JSON object; throws `CONDUCTOR_ERR_PROTOCOL` for anything else. */
export function decodeLine(line: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot parse control message: not JSON: ${preview(line)}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot parse control message: expected a JSON object, got ${preview(line)}`);
  }
  return value as Record<string, unknown>;
}

/** Rule for keys: what goes into a host name label. */
export const KEY_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Lowercases and checks a route key; `undefined`, `null` and `""` give {@link DEFAULT_KEY}
 * as the original server does. Throws `CONDUCTOR_ERR_KEY_INVALID` with the rule otherwise.
 */
export function normalizeKey(key: unknown): string {
  if (key === undefined || key === null || key === "") return DEFAULT_KEY;
  if (typeof key !== "string") {
    throw new ConductorError("CONDUCTOR_ERR_KEY_INVALID", `Cannot use key ${preview(JSON.stringify(key))}: a key is a string`);
  }
  const lower = key.toLowerCase();
  if (!KEY_RE.test(lower)) {
    throw new ConductorError("CONDUCTOR_ERR_KEY_INVALID",
      `Cannot use key ${preview(JSON.stringify(key))}: use 1 to 63 letters, digits and '-', not starting or ending with '-'`);
  }
  return lower;
}

/** Validates a decoded registration message (no `op`, or `op: "register"`). */
export function parseRegister(message: Record<string, unknown>): RegisterRequest {
  const auth = message.auth;
  if (typeof auth !== "string" || !AUTH_HASH_RE.test(auth.toLowerCase())) {
    throw new ConductorError("CONDUCTOR_ERR_PROTOCOL",
      "Cannot register route: 'auth' must be the hex blake2b-512 digest (128 hex digits) of the token");
  }
  if (auth.toLowerCase() === EMPTY_TOKEN_HASH) {
    // Anyone could open the app with an empty cookie.
    throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", "Cannot register route: its token is empty; set CONDUCTOR_TOKEN to at least 16 random characters, or unset it");
  }
  const key = normalizeKey(message.key);
  return { auth: auth.toLowerCase(), key, name: message.name === undefined ? key : normalizeName(message.name) };
}

/** Rule for service names: like keys, so that they fit in file and host names. */
export const NAME_RE = KEY_RE;

/** Lowercases and checks a service name; throws `CONDUCTOR_ERR_KEY_INVALID` with the rule. */
export function normalizeName(name: unknown): string {
  if (typeof name !== "string" || !NAME_RE.test(name.toLowerCase())) {
    throw new ConductorError("CONDUCTOR_ERR_KEY_INVALID",
      `Cannot use service name ${preview(JSON.stringify(name) ?? String(name))}: use 1 to 63 letters, digits and '-', not starting or ending with '-'`);
  }
  return name.toLowerCase();
}

/** Parses the server's banner line (client side). */
export function parseBanner(message: Record<string, unknown>): Banner {
  if (message.status !== "ok" || typeof message.directory !== "string" || !message.directory.startsWith("/")) {
    const reason = typeof message.reason === "string" ? `: ${message.reason}` : "";
    throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot use control banner ${preview(JSON.stringify(message))}${reason}`);
  }
  return { status: "ok", directory: message.directory };
}

/** Parses the server's reply to a registration (client side). */
export function parseReply(message: Record<string, unknown>): Reply {
  if (message.status === "ok" && Array.isArray(message.urls) && message.urls.every((u) => typeof u === "string")) {
    // Servers before the scheme extension do not say; production gateways are behind TLS.
    const stream = typeof message.address === "string" && typeof message.port === "number" ? { address: message.address, port: message.port } : {};
    return { status: "ok", urls: message.urls as string[], scheme: message.scheme === "http" ? "http" : "https", activity: message.activity === true, ...stream };
  }
  const reason = typeof message.reason === "string" ? message.reason : `server answered ${preview(JSON.stringify(message))}`;
  return typeof message.code === "string" ? { status: "error", reason, code: message.code } : { status: "error", reason };
}

function preview(s: string): string {
  return s.length > 120 ? s.slice(0, 117) + "..." : s;
}
