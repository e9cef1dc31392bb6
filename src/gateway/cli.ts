/**
 * The command line of conductor-server, compatible with the original's:
 * `-p/--port`, `-s/--sock`, `-r/--runtime-dir`, `-d/--domain`,
 * `--ssl-cert-file`, `--ssl-key-file`, `--ssl-allowed-clients`, `-v/--verbose`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConductorError, messageOf } from "../lib/errors.ts";
import { parseDuration } from "../lib/duration.ts";
import { DEFAULT_CONNECTION_CAPS } from "./connection_limits.ts";
import { parseDomainPattern } from "./domains.ts";
import { DEFAULT_POOL_OPTIONS, type PoolOptions } from "./pool.ts";
import type { GatewayOptions } from "./service.ts";

/** The default runtime directory, as the original's. */
export const DEFAULT_RUNTIME_DIR = "/var/run/conductor";
/** The default TCP port, as the original's. */
export const DEFAULT_PORT = 8888;
/** The default directory of durable state. */
export const DEFAULT_STATE_DIR = "/var/lib/conductor";

/** `conductor-server --help`. */
export const SERVER_HELP = `Usage: conductor-server [options]

Publish web apps that conductor clients forward from compute nodes over SSH
as http(s)://{key}-{user}.DOMAIN/, with cookie authorization.

Front end:
  -p, --port PORT              TCP port of the front end (default ${DEFAULT_PORT}; 0 picks a free one)
  -b, --bind ADDRESS           address to bind the port to (default: every address)
  -s, --sock PATH              listen on a UNIX socket (mode 0660) instead of a port,
                               for a reverse proxy in front
      --sock-group GROUP       give the --sock socket to GROUP, the reverse proxy's
                               (the gateway's user must be a member); never put the
                               proxy in the gateway's own group, which reaches apps
  -d, --domain PATTERN         publish routes under PATTERN, which holds {key} and
                               {user} once each, e.g. '{key}-{user}.example.org';
                               repeatable (default '{key}-{user}.localhost:PORT')
      --ssl-cert-file FILE     serve HTTPS with this PEM certificate chain
      --ssl-key-file FILE      and this PEM private key
      --ssl-allowed-clients FILE
                               only clients presenting a certificate issued by (or
                               equal to) one in this PEM file may connect; others
                               fail the TLS handshake
      --trust-forwarded        keep X-Forwarded-For/-Proto/-Host from requests (a
                               reverse proxy sets them); the default with --sock

  Started by a systemd .socket unit (LISTEN_FDS), it serves the one socket the
  unit holds, and --port, --bind, --sock and --sock-group do not apply.

Control socket and limits:
  -r, --runtime-dir DIR        holds the control socket DIR/client and the client
                               directories DIR/sockets (default ${DEFAULT_RUNTIME_DIR})
      --state-dir DIR          keeps each user's routes in DIR/users/USER.json, so
                               that a restart keeps the routes whose clients live
                               (default ${DEFAULT_STATE_DIR})
      --max-routes-per-user N  routes one user may hold at once (default 64)
      --max-request-body SIZE  refuse request bodies larger than SIZE bytes (suffix
                               k, M or G) with 413 (default: no limit)
      --max-connections N      browser connections open at once, websockets included;
                               more are answered 503 with Retry-After (default
                               ${DEFAULT_CONNECTION_CAPS.maxTotal}; 0 for no cap)
      --max-connections-per-address N
                               the same from one client address; behind a reverse
                               proxy on --sock there is none (default
                               ${DEFAULT_CONNECTION_CAPS.maxPerAddress}; 0 for no cap)
      --max-app-connections N  connections to one app at once, websockets included
                               (each is an SSH channel); as many requests more
                               wait up to 10 s for one, others get 503 (default
                               ${DEFAULT_POOL_OPTIONS.maxOpen}; 0 for no cap)
      --max-idle DURATION      close a route no browser used for DURATION (90, 30s,
                               15m, 2h), whatever its client asked; the client
                               prints why and stops its app (default: never)

Other:
  -v, --verbose                debug logs (JSON lines on stderr)
  -V, --version                print the version and exit
  -h, --help                   print this help and exit

Signals: SIGHUP reloads the TLS files; SIGTERM and SIGINT stop the server.
See conductor-server(8) and conductor(7).
`;

/** What the command line asks for. */
export type ServerCommand =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "run"; options: GatewayOptions; verbose: boolean };

/**
 * Parses conductor-server's arguments, given the descriptor of the socket
 * systemd passed, if any; throws `CONDUCTOR_ERR_USAGE` with the reason.
 */
export function parseServerArgs(argv: string[], listenFd?: number): ServerCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: "string", short: "p" },
        bind: { type: "string", short: "b" },
        sock: { type: "string", short: "s" },
        "sock-group": { type: "string" },
        "runtime-dir": { type: "string", short: "r" },
        "state-dir": { type: "string" },
        domain: { type: "string", short: "d", multiple: true },
        "ssl-cert-file": { type: "string" },
        "ssl-key-file": { type: "string" },
        "ssl-allowed-clients": { type: "string" },
        "trust-forwarded": { type: "boolean" },
        "max-routes-per-user": { type: "string" },
        "max-request-body": { type: "string" },
        "max-idle": { type: "string" },
        "max-connections": { type: "string" },
        "max-app-connections": { type: "string" },
        "max-connections-per-address": { type: "string" },
        verbose: { type: "boolean", short: "v" },
        version: { type: "boolean", short: "V" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw usage(messageOf(err));
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  for (const pattern of values.domain ?? []) {
    try {
      parseDomainPattern(pattern);
    } catch (err) {
      throw usage(messageOf(err));
    }
  }
  const port = values.port === undefined ? DEFAULT_PORT : integer(values.port, "--port", 0, 65535);
  const cert = values["ssl-cert-file"];
  const key = values["ssl-key-file"];
  const allowed = values["ssl-allowed-clients"];
  if ((cert === undefined) !== (key === undefined)) throw usage("--ssl-cert-file and --ssl-key-file go together");
  if (allowed !== undefined && cert === undefined) throw usage("--ssl-allowed-clients needs --ssl-cert-file and --ssl-key-file");
  if (values["sock-group"] !== undefined && values.sock === undefined) throw usage("--sock-group needs --sock");
  if (listenFd !== undefined) {
    const given = (["port", "bind", "sock", "sock-group"] as const).filter((name) => values[name] !== undefined);
    if (given.length > 0) {
      throw usage(`systemd passed a listening socket (socket activation), so --${given.join(", --")} cannot apply: ` +
        "drop the option, or set ListenStream=, SocketGroup= and SocketMode= in the .socket unit instead");
    }
  }
  return {
    kind: "run",
    verbose: values.verbose ?? false,
    options: {
      port,
      bind: values.bind,
      sock: values.sock,
      sockGroup: values["sock-group"],
      listenFd,
      runtimeDir: values["runtime-dir"] ?? DEFAULT_RUNTIME_DIR,
      stateDir: values["state-dir"] ?? DEFAULT_STATE_DIR,
      domains: values.domain ?? [],
      tls: cert === undefined || key === undefined ? undefined : { certFile: cert, keyFile: key, allowedClientsFile: allowed },
      trustForwarded: values["trust-forwarded"] ?? values.sock !== undefined,
      maxRoutesPerUser: values["max-routes-per-user"] === undefined ? undefined : integer(values["max-routes-per-user"], "--max-routes-per-user", 1, 1_000_000),
      maxRequestBody: values["max-request-body"] === undefined ? undefined : size(values["max-request-body"], "--max-request-body"),
      maxIdleMs: values["max-idle"] === undefined ? undefined : parseDuration(values["max-idle"], "--max-idle") * 1000,
      pool: values["max-app-connections"] === undefined ? undefined : appConnections(integer(values["max-app-connections"], "--max-app-connections", 0, 1_000_000)),
      connectionCaps: {
        maxTotal: values["max-connections"] === undefined ? DEFAULT_CONNECTION_CAPS.maxTotal : integer(values["max-connections"], "--max-connections", 0, 10_000_000),
        maxPerAddress: values["max-connections-per-address"] === undefined ? DEFAULT_CONNECTION_CAPS.maxPerAddress
          : integer(values["max-connections-per-address"], "--max-connections-per-address", 0, 10_000_000),
      },
    },
  };
}

function integer(text: string, option: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw usage(`${option} takes a whole number from ${min} to ${max}, not '${text}'`);
  }
  return Number(text);
}

/** A size in bytes: digits with an optional k, M or G (powers of 1024). */
function size(text: string, option: string): number {
  const m = /^([0-9]+)([kMG]?)$/.exec(text);
  if (m === null) throw usage(`${option} takes a size such as 500M, 2G or 1048576, not '${text}'`);
  return Number(m[1]) * { "": 1, k: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2] as "" | "k" | "M" | "G"];
}

function usage(reason: string): ConductorError {
  return new ConductorError("CONDUCTOR_ERR_USAGE", `${reason}\nTry 'conductor-server --help'.`);
}

/** Pool settings for --max-app-connections N: N open, N more waiting (no queue without a cap). */
function appConnections(n: number): PoolOptions {
  return { ...DEFAULT_POOL_OPTIONS, maxOpen: n, maxWaiting: n };
}
