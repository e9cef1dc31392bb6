/**
 * The command line of conductor-server, compatible with the original's:
 * `-p/--port`, `-s/--sock`, `-r/--runtime-dir`, `-d/--domain`,
 * `--ssl-cert-file`, `--ssl-key-file`, `--ssl-allowed-clients`, `-v/--verbose`.
 *
 * @module
 */
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { messageOf, usageError, type ConductorError } from "../lib/errors.ts";
import { parseDuration } from "../lib/duration.ts";
import { DEFAULT_CONNECTION_CAPS } from "../gateway/connection_limits.ts";
import { parseDomainPattern } from "../gateway/domains.ts";
import { DEFAULT_POOL_OPTIONS, type PoolOptions } from "../gateway/pool.ts";
import { DEFAULT_RATE } from "../control/registrar/rate.ts";
import type { GatewayOptions } from "./service.ts";
import { BUILTIN_MODULE, DEFAULT_STREAM_SETTINGS, type StreamSettings } from "../streams/settings.ts";
import { checkCidr, parsePortRange } from "../streams/validate.ts";
import type { AdminOptions } from "../streams/admin.ts";

/** The default runtime directory, as the original's. */
export const DEFAULT_RUNTIME_DIR = "/var/run/conductor";
/** The default TCP port, as the original's. */
export const DEFAULT_PORT = 8888;
/** The default directory of durable state. */
export const DEFAULT_STATE_DIR = "/var/lib/conductor";

/** Paths that may stand in nginx's configuration as they are. */
const NGINX_SAFE_PATH = /^\/[A-Za-z0-9._/+-]*$/;

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
      --max-pending N          control connections waiting for their config at
                               once; when full, one user's excess gives way to
                               a newcomer (default 1024)
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
      --max-registrations-per-minute N
                               registrations one user may make per minute, routes
                               and streams together, after a first ${DEFAULT_RATE.burst} at once (or
                               twice the two per-user limits, if more) (default
                               ${DEFAULT_RATE.perMinute}; 0 for no limit)

TCP streams (conductor --tcp), relayed by an nginx the gateway runs as its own user,
configured once for every port of the range (a registration swaps a symbolic link,
nginx is not reloaded); it outlives the gateway, whose next start adopts it:
      --port-range FIRST-LAST  ports handed out, both included (default ${DEFAULT_STREAM_SETTINGS.range.first}-${DEFAULT_STREAM_SETTINGS.range.last};
                               environment PORT_RANGE)
      --stream-host NAME       host name given to clients as NAME:PORT (default: this
                               machine's name)
      --streams-per-user N     streams one user may hold at once (default ${DEFAULT_STREAM_SETTINGS.perUser})
      --stream-allow CIDR      only addresses in CIDR may connect to streams (nginx
                               allow); repeatable
      --stream-deny CIDR       addresses in CIDR may not, even inside an allowed
                               block (nginx deny, before the allows); repeatable
      --stream-max-connections N
                               connections to one stream port at once (nginx
                               limit_conn; default ${DEFAULT_STREAM_SETTINGS.maxConnections}; 0 for no cap)
      --stream-max-connections-per-address N
                               the same from one client address, so that one
                               address cannot starve the others (default ${DEFAULT_STREAM_SETTINGS.maxConnectionsPerAddress}; 0 for
                               no cap)
      --stream-grace DURATION  keep the port of a stream whose client dropped
                               without a goodbye for the same user and name this
                               long (default ${DEFAULT_STREAM_SETTINGS.graceMs / 1000}s)
      --stream-idle-timeout DURATION
                               close a stream connection silent both ways for
                               DURATION (nginx proxy_timeout; default 24h, since
                               nginx's own 10m drops idle database sessions)
      --stream-proxy-protocol  send the PROXY protocol header, so that the app sees
                               the client's address (the app must expect it)
      --nginx-mode own|site    own: the gateway runs its own nginx (the default);
                               site: the site's nginx includes the blocks the
                               gateway writes into --stream-dir (reloaded by the
                               admin once, at setup; see conductor-server(8))
      --nginx PATH             the nginx program (default ${DEFAULT_STREAM_SETTINGS.nginx};
                               environment NGINX_BIN)
      --stream-module PATH     nginx's stream module, loaded by absolute path, or
                               'builtin' for an nginx built with it inside (Guix,
                               Nix) (default ${DEFAULT_STREAM_SETTINGS.module})
      --stream-dir DIR         where the stream blocks go (default RUNTIME/nginx/stream.d;
                               environment STREAM_CONFIG_PATH)
      --stream-prefix PREFIX   name prefix of the gateway's block files there
                               (default ${DEFAULT_STREAM_SETTINGS.prefix}; environment STREAM_PREFIX)
      --no-streams             publish web apps only
      --stop-streams           stop the streams' nginx of --runtime-dir (the
                               connections it relays end) and exit
      --print-stream-config    print the stream blocks for the site's nginx (the
                               files --nginx-mode site writes) and exit
      --admin-socket PATH      serve the streams' admin API (stream-conductor's verbs:
                               /status, /getstreams, /createstream/PORT/BACKEND,
                               /removestream/PORT, /hasstream/PORT, /getfreeport) on
                               this UNIX socket; who may connect is set by its mode
                               and group
      --admin-socket-mode MODE the socket's mode, octal (default 0660)
      --admin-socket-group GROUP
                               the socket's group (the gateway's user must be in it)
      --admin-listen HOST:PORT serve the admin API on this TCP address; each request
                               needs 'Authorization: Bearer TOKEN'
      --admin-token-file FILE  the token, in a file only the gateway's user may read

Other:
  -v, --verbose                debug logs (JSON lines on stderr)
  -V, --version                print the version and exit
  -h, --help                   print this help and exit

Signals: SIGHUP reloads the TLS files; SIGTERM and SIGINT stop the server (the
streams' nginx goes on relaying for the next start; --stop-streams ends it).
See conductor-server(8) and conductor(7).
`;

/** What the command line asks for. */
export type ServerCommand =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "run"; options: GatewayOptions; verbose: boolean }
  | { kind: "stop-streams"; settings: StreamSettings; runtimeDir: string; verbose: boolean }
  | { kind: "print-stream-config"; settings: StreamSettings; runtimeDir: string };

/**
 * Parses conductor-server's arguments, given the descriptor of the socket
 * systemd passed, if any; throws `CONDUCTOR_ERR_USAGE` with the reason.
 */
export function parseServerArgs(argv: string[], listenFd?: number, env: NodeJS.ProcessEnv = {}): ServerCommand {
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
        "max-pending": { type: "string" },
        "max-request-body": { type: "string" },
        "max-idle": { type: "string" },
        "max-connections": { type: "string" },
        "max-app-connections": { type: "string" },
        "max-connections-per-address": { type: "string" },
        "port-range": { type: "string" },
        "stream-host": { type: "string" },
        "streams-per-user": { type: "string" },
        "stream-allow": { type: "string", multiple: true },
        "stream-deny": { type: "string", multiple: true },
        "stream-max-connections": { type: "string" },
        "stream-max-connections-per-address": { type: "string" },
        "stream-grace": { type: "string" },
        "stop-streams": { type: "boolean" },
        "print-stream-config": { type: "boolean" },
        "nginx-mode": { type: "string" },
        "max-registrations-per-minute": { type: "string" },
        "stream-idle-timeout": { type: "string" },
        "stream-proxy-protocol": { type: "boolean" },
        nginx: { type: "string" },
        "stream-module": { type: "string" },
        "stream-dir": { type: "string" },
        "stream-prefix": { type: "string" },
        "no-streams": { type: "boolean" },
        "admin-socket": { type: "string" },
        "admin-socket-mode": { type: "string" },
        "admin-socket-group": { type: "string" },
        "admin-listen": { type: "string" },
        "admin-token-file": { type: "string" },
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
  if (values["print-stream-config"]) {
    return { kind: "print-stream-config", settings: streamSettings(values, env), runtimeDir: values["runtime-dir"] ?? DEFAULT_RUNTIME_DIR };
  }
  if (values["stop-streams"]) {
    if (values["no-streams"]) throw usage("--stop-streams and --no-streams contradict each other");
    return { kind: "stop-streams", settings: streamSettings(values, env), runtimeDir: values["runtime-dir"] ?? DEFAULT_RUNTIME_DIR, verbose: values.verbose ?? false };
  }
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
  const runtimeDir = values["runtime-dir"] ?? DEFAULT_RUNTIME_DIR;
  if (!values["no-streams"] && !NGINX_SAFE_PATH.test(runtimeDir)) {
    throw usage(`--runtime-dir goes into nginx's configuration (the streams' links), so it takes an absolute path of letters, digits and ._/+-, not '${runtimeDir}'; or give --no-streams`);
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
      runtimeDir,
      stateDir: values["state-dir"] ?? DEFAULT_STATE_DIR,
      domains: values.domain ?? [],
      tls: cert === undefined || key === undefined ? undefined : { certFile: cert, keyFile: key, allowedClientsFile: allowed },
      trustForwarded: values["trust-forwarded"] ?? values.sock !== undefined,
      maxRoutesPerUser: values["max-routes-per-user"] === undefined ? undefined : integer(values["max-routes-per-user"], "--max-routes-per-user", 1, 1_000_000),
      maxPending: values["max-pending"] === undefined ? undefined : integer(values["max-pending"], "--max-pending", 1, 1_000_000),
      maxRequestBody: values["max-request-body"] === undefined ? undefined : size(values["max-request-body"], "--max-request-body"),
      maxIdleMs: values["max-idle"] === undefined ? undefined : wrapUsage(() => parseDuration(values["max-idle"]!, "--max-idle")) * 1000,
      registrationRate: values["max-registrations-per-minute"] === undefined ? undefined
        : { ...DEFAULT_RATE, perMinute: integer(values["max-registrations-per-minute"], "--max-registrations-per-minute", 0, 1_000_000) },
      pool: values["max-app-connections"] === undefined ? undefined : appConnections(integer(values["max-app-connections"], "--max-app-connections", 0, 1_000_000)),
      streams: values["no-streams"] ? undefined : streamSettings(values, env),
      admin: adminOptions(values),
      connectionCaps: {
        maxTotal: values["max-connections"] === undefined ? DEFAULT_CONNECTION_CAPS.maxTotal : integer(values["max-connections"], "--max-connections", 0, 10_000_000),
        maxPerAddress: values["max-connections-per-address"] === undefined ? DEFAULT_CONNECTION_CAPS.maxPerAddress
          : integer(values["max-connections-per-address"], "--max-connections-per-address", 0, 10_000_000),
      },
    },
  };
}

/** Where the admin API listens, if anywhere; it is never open to anyone. */
function adminOptions(values: Record<string, string | string[] | boolean | undefined>): AdminOptions | undefined {
  const socket = values["admin-socket"] as string | undefined;
  const listen = values["admin-listen"] as string | undefined;
  const tokenFile = values["admin-token-file"] as string | undefined;
  const mode = values["admin-socket-mode"] as string | undefined;
  const group = values["admin-socket-group"] as string | undefined;
  if (socket === undefined && (mode !== undefined || group !== undefined)) throw usage("--admin-socket-mode and --admin-socket-group go with --admin-socket");
  if (listen === undefined && tokenFile !== undefined) throw usage("--admin-token-file goes with --admin-listen");
  if (listen !== undefined && tokenFile === undefined) throw usage("--admin-listen needs --admin-token-file: the admin API is never open to anyone who can connect");
  if ((socket !== undefined || listen !== undefined) && values["no-streams"]) throw usage("the admin API manages streams: drop --no-streams or the --admin-* options");
  if (mode !== undefined && (!/^0?[0-7]{3}$/.test(mode) || (parseInt(mode, 8) & 0o007) !== 0)) {
    throw usage(`--admin-socket-mode takes an octal mode that gives others nothing, such as 0660 or 0600, not '${mode}'`);
  }
  const address = listen === undefined ? undefined : /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):([0-9]{1,5})$/.exec(listen);
  if (address === null) throw usage(`--admin-listen takes HOST:PORT, such as 127.0.0.1:5000, not '${listen}'`);
  if (socket === undefined && address === undefined) return undefined;
  return {
    ...(socket === undefined ? {} : { socket: { path: socket, mode: mode === undefined ? 0o660 : parseInt(mode, 8), group } }),
    ...(address === undefined ? {} : { listen: { host: address[1].replace(/^\[|\]$/g, ""), port: integer(address[2], "--admin-listen's port", 0, 65535), tokenFile: tokenFile! } }),
  };
}

/** The stream options, with stream-conductor's environment variables as defaults. */
function streamSettings(values: Record<string, string | string[] | boolean | undefined>, env: NodeJS.ProcessEnv): StreamSettings {
  const text = (name: string): string | undefined => values[name] as string | undefined;
  const masks = (name: string): string[] => ((values[name] ?? []) as string[]).map((mask) => wrapUsage(() => checkCidr(mask, `--${name}`)));
  const range = text("port-range") ?? env.PORT_RANGE;
  const prefix = text("stream-prefix") ?? env.STREAM_PREFIX ?? DEFAULT_STREAM_SETTINGS.prefix;
  if (!/^[A-Za-z0-9_.-]{1,32}$/.test(prefix)) throw usage(`--stream-prefix takes 1 to 32 letters, digits, '_', '.' and '-', not '${prefix}'`);
  const path = (name: string, fallback: string | undefined): string | undefined => {
    const value = text(name) ?? fallback;
    if (value !== undefined && !NGINX_SAFE_PATH.test(value)) throw usage(`--${name} takes an absolute path of letters, digits and ._/+-, not '${value}'`);
    return value;
  };
  const idle = text("stream-idle-timeout");
  const mode = text("nginx-mode") ?? DEFAULT_STREAM_SETTINGS.mode;
  if (mode !== "own" && mode !== "site") throw usage(`--nginx-mode takes own or site, not '${mode}'`);
  const dir = path("stream-dir", env.STREAM_CONFIG_PATH);
  if (mode === "site" && dir === undefined) throw usage("--nginx-mode site needs --stream-dir: the directory the site's nginx includes the gateway's blocks from");
  return {
    ...DEFAULT_STREAM_SETTINGS,
    mode,
    range: range === undefined ? DEFAULT_STREAM_SETTINGS.range : wrapUsage(() => parsePortRange(range)),
    nginx: path("nginx", env.NGINX_BIN) ?? DEFAULT_STREAM_SETTINGS.nginx,
    module: text("stream-module") === BUILTIN_MODULE ? BUILTIN_MODULE : path("stream-module", undefined) ?? DEFAULT_STREAM_SETTINGS.module,
    dir,
    prefix,
    host: text("stream-host") ?? hostname(),
    perUser: text("streams-per-user") === undefined ? DEFAULT_STREAM_SETTINGS.perUser : integer(text("streams-per-user")!, "--streams-per-user", 1, 65535),
    allow: masks("stream-allow"),
    deny: masks("stream-deny"),
    maxConnections: text("stream-max-connections") === undefined ? DEFAULT_STREAM_SETTINGS.maxConnections
      : integer(text("stream-max-connections")!, "--stream-max-connections", 0, 1_000_000),
    maxConnectionsPerAddress: text("stream-max-connections-per-address") === undefined ? DEFAULT_STREAM_SETTINGS.maxConnectionsPerAddress
      : integer(text("stream-max-connections-per-address")!, "--stream-max-connections-per-address", 0, 1_000_000),
    graceMs: text("stream-grace") === undefined ? DEFAULT_STREAM_SETTINGS.graceMs : wrapUsage(() => parseDuration(text("stream-grace")!, "--stream-grace")) * 1000,
    idleTimeoutS: idle === undefined ? DEFAULT_STREAM_SETTINGS.idleTimeoutS : wrapUsage(() => parseDuration(idle, "--stream-idle-timeout")),
    proxyProtocol: values["stream-proxy-protocol"] === true,
  };
}

function wrapUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw usage(messageOf(err));
  }
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
  return usageError("conductor-server", reason);
}

/** Pool settings for --max-app-connections N: N open, N more waiting (no queue without a cap). */
function appConnections(n: number): PoolOptions {
  return { ...DEFAULT_POOL_OPTIONS, maxOpen: n, maxWaiting: n };
}
