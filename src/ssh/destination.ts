/**
 * The gateway argument of `conductor`: `[user@]host[:port][/path/to/client.sock]`,
 * as the original client reads it.
 *
 * @module
 */
import { ConductorError } from "../lib/errors.ts";

/** Where the gateway is and where its control socket lives. */
export interface Destination {
  /** Login name, or null for ssh's default. */
  user: string | null;
  host: string;
  /** SSH port, or null for ssh's default. */
  port: number | null;
  /** Absolute path of the gateway's control socket. */
  controlPath: string;
}

/** The control socket path when the argument names none. */
export const DEFAULT_CONTROL_PATH = "/var/run/conductor/client";

/** Characters allowed in paths that go into ssh forward specifications and remote commands. */
export const SAFE_PATH_RE = /^\/[A-Za-z0-9._\/+-]*$/;

/**
 * Parses `[user@]host[:port][/path]`. The host may be an ssh_config alias;
 * an IPv6 address goes in brackets (`[::1]:22`). Throws `CONDUCTOR_ERR_USAGE`
 * naming the problem.
 */
export function parseDestination(text: string): Destination {
  const bad = (why: string): ConductorError =>
    new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot use gateway '${text}': ${why}; write [user@]host[:port][/path/to/client.sock]`);
  let rest = text;
  let user: string | null = null;
  const at = rest.lastIndexOf("@");
  if (at !== -1) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (!/^[A-Za-z0-9._][A-Za-z0-9._-]*\$?$/.test(user)) throw bad(`'${user}' is not a user name`);
  }
  let host: string;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close === -1) throw bad("unclosed '['");
    host = rest.slice(1, close);
    rest = rest.slice(close + 1);
    if (!/^[0-9A-Fa-f:.]+(?:%[A-Za-z0-9]+)?$/.test(host)) throw bad(`'${host}' is not an IPv6 address`);
  } else {
    const end = rest.search(/[:/]/);
    host = end === -1 ? rest : rest.slice(0, end);
    rest = end === -1 ? "" : rest.slice(end);
    if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(host)) throw bad(host === "" ? "no host" : `'${host}' is not a host name`);
  }
  let port: number | null = null;
  if (rest.startsWith(":")) {
    const m = /^:([0-9]{1,5})(?=\/|$)/.exec(rest);
    if (m === null || Number(m[1]) < 1 || Number(m[1]) > 65535) throw bad("the port must be a number from 1 to 65535");
    port = Number(m[1]);
    rest = rest.slice(m[0].length);
  }
  const controlPath = rest === "" ? DEFAULT_CONTROL_PATH : rest;
  if (!SAFE_PATH_RE.test(controlPath)) throw bad(`the control socket path '${controlPath}' must be absolute and use only letters, digits and . _ / + -`);
  return { user, host, port, controlPath };
}
