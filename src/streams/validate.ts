/**
 * What may go into an nginx stream block: ports of the gateway's range,
 * backends (`host:port`, or a `unix:` socket under the gateway's sockets
 * directory), service names and address masks. Everything else is refused
 * with the field and the rule, before it can reach a file.
 *
 * @module
 */
import { isIP } from "node:net";
import { normalize } from "node:path";
import { ConductorError } from "../lib/errors.ts";

/** An inclusive range of TCP ports. */
export interface PortRange {
  first: number;
  last: number;
}

/** Parses `FIRST-LAST` (inclusive, as `9000-9009` holds ten ports) or a single port. */
export function parsePortRange(text: string, option = "--port-range"): PortRange {
  const m = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/.exec(text.trim());
  const first = m === null ? NaN : Number(m[1]);
  const last = m === null ? NaN : Number(m[2] ?? m[1]);
  if (!(first >= 1 && last <= 65535 && first <= last)) {
    throw invalid(`${option} takes FIRST-LAST, two ports from 1 to 65535 with FIRST <= LAST (both included), not '${text}'`);
  }
  return { first, last };
}

/** The number of ports in a range. */
export function rangeSize(range: PortRange): number {
  return range.last - range.first + 1;
}

/** Checks a port given as text or number against the range; returns it as a number. */
export function checkPort(port: unknown, range: PortRange): number {
  const n = typeof port === "number" ? port : typeof port === "string" && /^[0-9]{1,5}$/.test(port) ? Number(port) : NaN;
  if (!Number.isInteger(n) || n < range.first || n > range.last) {
    throw invalid(`Cannot use port ${show(port)}: a port is a whole number from ${range.first} to ${range.last}, this gateway's stream range`);
  }
  return n;
}

/** Rule for stream service names. */
export const STREAM_NAME_RE = /^[a-z0-9-]{1,32}$/;

/** Checks a stream's service name: 1 to 32 lowercase letters, digits and '-'. */
export function checkStreamName(name: unknown): string {
  if (typeof name !== "string" || !STREAM_NAME_RE.test(name)) {
    throw invalid(`Cannot use stream name ${show(name)}: use 1 to 32 lowercase letters, digits and '-'`);
  }
  return name;
}

const DNS_LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
/** A DNS name whose last label starts with a letter: the C library reads `2130706433` or `0x7f000001` as an IPv4 address. */
const DNS_NAME_RE = new RegExp(`^(?=.{1,253}$)(?:${DNS_LABEL}\\.)*[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$`, "i");
/** Characters a socket path may hold in a stream block. */
const SOCKET_PATH_RE = /^\/[A-Za-z0-9._/-]+$/;

/**
 * Checks a backend and returns it as nginx's `proxy_pass` takes it:
 * `host:port` (a DNS name, an IPv4 literal or a bracketed IPv6 literal) or
 * `unix:/path` with the path inside `socketsDir`.
 */
export function checkBackend(backend: unknown, socketsDir: string): string {
  if (typeof backend !== "string") throw invalid(`Cannot use backend ${show(backend)}: ${BACKEND_RULE}`);
  if (backend.startsWith("unix:")) {
    const path = backend.slice(5);
    if (!SOCKET_PATH_RE.test(path) || normalize(path) !== path || !path.startsWith(socketsDir + "/") || path.endsWith("/")) {
      throw invalid(`Cannot use backend ${show(backend)}: a unix: backend is a socket path inside ${socketsDir}, of letters, digits, '.', '_', '-' and '/'`);
    }
    return backend;
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):([0-9]{1,5})$/.exec(backend);
  const host = m?.[1] ?? "";
  const port = Number(m?.[2]);
  const hostOk = host.startsWith("[") ? isIP(host.slice(1, -1)) === 6 : isIP(host) === 4 || DNS_NAME_RE.test(host);
  if (m === null || !hostOk || !(port >= 1 && port <= 65535)) throw invalid(`Cannot use backend ${show(backend)}: ${BACKEND_RULE}`);
  return backend;
}

const BACKEND_RULE = "a backend is HOST:PORT (HOST a DNS name whose last label starts with a letter, a dotted IPv4 address or an [IPv6] address; PORT from 1 to 65535) or unix:/path/to/socket";

/** Checks an address mask for nginx's `allow`/`deny`: an IP address, a CIDR block, or `all`. */
export function checkCidr(mask: string, option: string): string {
  const m = /^([0-9a-fA-F:.]+)(?:\/([0-9]{1,3}))?$/.exec(mask);
  const family = m === null ? 0 : isIP(m[1]);
  const bits = m?.[2] === undefined ? null : Number(m[2]);
  if (mask !== "all" && (family === 0 || (bits !== null && bits > (family === 4 ? 32 : 128)))) {
    throw invalid(`${option} takes an IP address, a CIDR block such as 10.0.0.0/8 or 2001:db8::/32, or 'all', not '${mask}'`);
  }
  return mask;
}

function show(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 80 ? text.slice(0, 77) + "..." : text;
}

function invalid(message: string): ConductorError {
  return new ConductorError("CONDUCTOR_ERR_STREAM_INVALID", message);
}
