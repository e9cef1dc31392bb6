/**
 * The command line of `conductor`, compatible with the original's:
 * `conductor [-r] [-v] [-k KEY] [user@]host[:port][/path/client.sock] app.sock -- command [args...]`,
 * and the verbs: `check`, `show`, `verify`, `list`, `stop`, `tunnel`.
 *
 * The first operand is a verb when it is exactly one of those words; a
 * gateway host with such a name is written with a user or a port
 * (`me@list`, `list:22`). One table, {@link OPTIONS}, says which options
 * there are, which take a value and where each applies: the search for the
 * verb, the parsing and the refusal of a misplaced option all read it.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { isAbsolute, resolve } from "node:path";
import { messageOf, usageError } from "../lib/errors.ts";
import { DEFAULT_KEY, normalizeKey, normalizeName } from "../control/protocol.ts";
import { parseDuration } from "../lib/duration.ts";
import { DEFAULT_CONTROL_PATH, parseDestination, type Destination } from "../ssh/destination.ts";
import { DEFAULT_CONNECT_TIMEOUT_SECONDS, identityAgent } from "../ssh/master.ts";
import { parseForward, type Forward } from "./tunnel.ts";

/** `conductor --help`. */
export const CLIENT_HELP = `Usage: conductor [options] [user@]host[:port][/path/to/client.sock] APP.SOCK -- COMMAND [ARG...]
       conductor check [-v] [-o OPTION]... [--agent SOCKET] [--connect-timeout DURATION]
                       [user@]host[:port][/path/to/client.sock]
       conductor show [--json] NAME
       conductor verify NAME KEY
       conductor list [--json] [-v] [--gateway GATEWAY [-o OPTION]... [--agent SOCKET]
                      [--connect-timeout DURATION]] [PATTERN]
       conductor stop NAME
       conductor tunnel [-v] [-o OPTION]... [--agent SOCKET] [--connect-timeout DURATION]
                        [user@]host[:port] LOCAL:REMOTE...

Run COMMAND, an app listening on the UNIX socket APP.SOCK, and publish it on
the conductor gateway HOST through SSH. Progress is printed as JSON lines on
stdout; the "live" line carries the URLs and the token. Then
'conductor show NAME' prints the link that opens it in a browser.

The app finds its socket path in $CONDUCTOR_SOCKET, e.g.
  conductor -k lab gw.example.org "$HOME/lab.sock" -- \\
    sh -c 'exec jupyter lab --no-browser --sock "$CONDUCTOR_SOCKET" \\
        --ServerApp.allow_remote_access=True'

Options of a run:
  -k, --key KEY        publish as https://KEY-USER.DOMAIN/: letters, digits
                       and '-' (default: none is sent, the gateway uses 'none')
  -n, --name NAME      the service's name for show, verify, list and stop
                       (default: the key); one live service per name
      --tcp            publish APP.SOCK as a TCP service on a port of the
                       gateway (a database, VNC, a Dask scheduler): the "live"
                       line carries "address" (HOST:PORT) and "port"; the
                       same name gets the same port again while it is free
      --port PORT      with --tcp: ask for this port of the gateway's range
  -r, --replace        stop the process already listening on APP.SOCK
                       instead of exiting with status 2
      --tls            make a key and a self-signed certificate for the app
                       (kept in the state directory), passed to it in
                       CONDUCTOR_TLS_CERT and CONDUCTOR_TLS_KEY
      --start-timeout DURATION
                       give up when the app has not listened on APP.SOCK
                       within DURATION (90, 30s, 15m, 2h): a "failed" event
                       names the socket, the app is stopped, the exit status
                       is 1 (default 10m: a first start can be slow)
      --idle-timeout DURATION
                       when no browser has used the app for DURATION (90,
                       30s, 15m, 2h; counted from going live), print an
                       "idle" event, stop the app and exit 0, so that a batch
                       job ends and frees its allocation; requests, uploads
                       and websocket messages from browsers count, websocket
                       pings and the app's own traffic do not (default: never)
  -o, --ssh-option OPTION
                       pass '-o OPTION' to ssh, e.g. -o Port=2222 or
                       -o IdentityFile=~/.ssh/cluster; repeatable
      --agent SOCKET   use this conductor-agent: ssh takes keys from it, and
                       it is unlocked before each SSH connection (default:
                       the one SSH_AUTH_SOCK names, if it is one)
      --connect-timeout DURATION
                       give ssh this long to reach the gateway and finish
                       its handshake (its ConnectTimeout), so that ssh's
                       own reason is reported when it cannot (default 30s;
                       -o ConnectTimeout=... takes precedence)
  -v, --verbose        debug logs (JSON lines on stderr)
  -V, --version        print the version and exit
  -h, --help           print this help and exit

Commands:
  check GATEWAY        try the way to the gateway step by step (the SSH
                       connection, its control socket, its banner) and print
                       the gateway's version and domains, or the step that
                       failed and why; exit 0 when all went through, else 1
  show NAME            URL, auth link and token of service NAME
  verify NAME KEY      exit 0 when KEY is the magic key (token) of NAME, else 1
  list [PATTERN]       your live services whose name matches PATTERN (* and ?)
  stop NAME            end service NAME: its conductor stops the app and exits
  tunnel HOST LOCAL:REMOTE...
                       forward LOCAL to REMOTE on HOST through the SSH
                       connection your runs to HOST share; each side a port
                       (local ports bind 127.0.0.1; a remote one is HOST's
                       localhost) or a UNIX socket path; prints a JSON line
                       per forward, holds them until stopped (Ctrl-C), exits
                       1 with a reason if the connection ends
      --json           print JSON instead of text (show, list)
      --gateway GATEWAY
                       list what the gateway publishes for you, over SSH
                       (no tokens)
  -o, --agent, --connect-timeout and -v (ssh's debug lines) apply to check,
  tunnel and list --gateway as to a run.
  The commands show, verify, list and stop read your own live services only,
  never another user's.

The control socket path defaults to /var/run/conductor/client on HOST.
SSH uses your own ~/.ssh/config, agent and known_hosts, in batch mode (no
password prompts). Several runs to one gateway share one SSH connection.
A gateway host named check, show, verify, list, stop or tunnel is written
with a user or a port (me@list, list:22).

Environment:
  CONDUCTOR_TOKEN      the token that opens the app, at least 16 characters
                       (removed before COMMAND starts); default: 32 random
                       characters
  CONDUCTOR_SSH        the ssh program to use (default: ssh)
  CONDUCTOR_SOCKET     set for COMMAND: the absolute path of APP.SOCK
  CONDUCTOR_TLS_CERT, CONDUCTOR_TLS_KEY
                       set for COMMAND with --tls: its certificate and key
  XDG_STATE_HOME       the state directory is $XDG_STATE_HOME/conductor
                       (default ~/.local/state/conductor)

Exit status: 0 when COMMAND exits 0 (or conductor is stopped by a signal),
1 on any error or when COMMAND fails or exits before it listens, 2 when
APP.SOCK is in use or is not a socket, or the command line or environment is
wrong.
See conductor(1) and conductor(7).
`;

/** How long an app may take to listen on its socket by default: 10 minutes (Jupyter's first start can be slow). */
export const DEFAULT_START_TIMEOUT_MS = 600_000;

/** The verbs: a first operand that is one of these words is a command, not a gateway. */
export const VERBS = ["check", "show", "verify", "list", "stop", "tunnel"] as const;

/** A verb. */
export type Verb = typeof VERBS[number];

/** Where an option applies: a run, or a verb. */
export type Context = "run" | Verb;

/** An option: its node:util parseArgs form, and where it applies. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  for: readonly Context[];
}

/** Where the options of the SSH connection apply. */
const SSH_CONTEXTS = ["run", "check", "list", "tunnel"] as const;

/** Options that `list` takes only with `--gateway`, when it connects. */
const GATEWAY_ONLY = new Set(["agent", "connect-timeout", "ssh-option"]);

/** Every option of `conductor`, and where it applies. */
export const OPTIONS = {
  agent: { type: "string", for: SSH_CONTEXTS },
  "connect-timeout": { type: "string", for: SSH_CONTEXTS },
  gateway: { type: "string", for: ["list"] },
  help: { type: "boolean", short: "h", for: ["run", ...VERBS] },
  "idle-timeout": { type: "string", for: ["run"] },
  json: { type: "boolean", for: ["show", "list"] },
  key: { type: "string", short: "k", for: ["run"] },
  name: { type: "string", short: "n", for: ["run"] },
  port: { type: "string", for: ["run"] },
  replace: { type: "boolean", short: "r", for: ["run"] },
  "ssh-option": { type: "string", short: "o", multiple: true, for: SSH_CONTEXTS },
  "start-timeout": { type: "string", for: ["run"] },
  tcp: { type: "boolean", for: ["run"] },
  tls: { type: "boolean", for: ["run"] },
  verbose: { type: "boolean", short: "v", for: SSH_CONTEXTS },
  version: { type: "boolean", short: "V", for: ["run"] },
} as const satisfies Record<string, OptionSpec>;

/** How a command reaches the gateway over SSH. */
export interface SshArgs {
  destination: Destination;
  /** `-o` options for ssh. */
  sshOptions: string[];
  /** The conductor-agent socket given with --agent. */
  agent?: string;
  /** ssh's ConnectTimeout, in seconds (--connect-timeout). */
  connectTimeout: number;
}

/** What the client command line asks for. */
export type ClientCommand =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "run"; options: ClientArgs }
  | { kind: "check"; gateway: string; ssh: SshArgs; verbose: boolean }
  | { kind: "show"; name: string; json: boolean }
  | { kind: "verify"; name: string; key: string }
  | { kind: "list"; pattern: string; json: boolean; gateway: SshArgs | null; verbose: boolean }
  | { kind: "stop"; name: string }
  | { kind: "tunnel"; ssh: SshArgs; forwards: Forward[]; verbose: boolean };

/** A parsed `conductor` run. */
export interface ClientArgs extends SshArgs {
  /** The gateway argument as given. */
  gateway: string;
  /** Absolute path of the app socket. */
  appSocket: string;
  command: string[];
  key: string | null;
  /** Registry name: `--name`, else the key, else "none". */
  name: string;
  replace: boolean;
  tls: boolean;
  /** Publish as a TCP stream (--tcp), on `port` if given. */
  tcp: boolean;
  port: number | null;
  /** Stop after this long without browser activity, in ms; null for never. */
  idleTimeoutMs: number | null;
  /** Give up when the app has not listened within this long, in ms. */
  startTimeoutMs: number;
  verbose: boolean;
}

/** What node:util parseArgs makes of {@link OPTIONS}. */
type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>["values"];

const SPECS: Record<string, OptionSpec> = OPTIONS;

/** Long options that take the next argument as their value. */
const LONG_WITH_VALUE = new Set(Object.keys(SPECS).filter((name) => SPECS[name].type === "string").map((name) => `--${name}`));
/** Short options that take a value: the rest of their argument, or the next one. */
const SHORT_WITH_VALUE = new Set(Object.values(SPECS).flatMap((o) => (o.type === "string" && o.short !== undefined ? [o.short] : [])));

/** True when `arg` takes the next argument as its value: `-k`, `--key`, or a bundle ending in one, `-vk`. */
function takesValue(arg: string): boolean {
  if (arg.startsWith("--")) return LONG_WITH_VALUE.has(arg);
  if (!arg.startsWith("-")) return false;
  for (let i = 1; i < arg.length; i++) if (SHORT_WITH_VALUE.has(arg[i])) return i === arg.length - 1;
  return false;
}

/**
 * Parses the arguments. In a run, the command starts after `--`, or else at
 * the third operand, so the command's own options are never read as
 * conductor's.
 */
export function parseClientArgs(argv: string[], cwd = process.cwd()): ClientCommand {
  const verbAt = argv.findIndex((a, i) => !a.startsWith("-") && !takesValue(argv[i - 1] ?? ""));
  if (verbAt !== -1 && (VERBS as readonly string[]).includes(argv[verbAt])) {
    const verb = argv[verbAt] as Verb;
    const { values, positionals } = parseOptions(verb, [...argv.slice(0, verbAt), ...argv.slice(verbAt + 1)]);
    return values.help ? { kind: "help" } : parseVerb(verb, values, positionals, cwd);
  }
  const { head, command, dashes } = splitCommand(argv);
  const { values, positionals } = parseOptions("run", head);
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  if (positionals.length < 2) throw usage("a gateway and an app socket are needed");
  if (command.length === 0) throw usage(`no command to run: put it after '--' (or, for a verb, use one of ${VERBS.join(", ")})`);
  if (command[0] === "") throw usage("the command to run is empty");
  if (!dashes && command[0].startsWith("-")) {
    throw usage(`'${command[0]}' comes after the gateway and the app socket, where the command starts: options go before the gateway`);
  }
  const appSocket = isAbsolute(positionals[1]) ? positionals[1] : resolve(cwd, positionals[1]);
  if (appSocket.includes(":")) throw usage(`the app socket path ${appSocket} contains ':', which ssh cannot forward; choose another path`);
  if (Buffer.byteLength(appSocket) > 107) throw usage(`the app socket path ${appSocket} is longer than the 107 bytes a UNIX socket path may have; choose a shorter one`);
  const key = values.key === undefined || values.key === "" ? null : wrap(() => normalizeKey(values.key));
  const name = values.name === undefined ? key ?? DEFAULT_KEY : wrap(() => normalizeName(values.name));
  const idleTimeoutMs = values["idle-timeout"] === undefined ? null : duration(values["idle-timeout"], "--idle-timeout") * 1000;
  const tcp = values.tcp ?? false;
  if (values.port !== undefined && !tcp) throw usage("--port goes with --tcp");
  if (values.port !== undefined && !/^[0-9]{1,5}$/.test(values.port)) throw usage(`--port takes a port number, not '${values.port}'`);
  if (tcp && idleTimeoutMs !== null) throw usage("--idle-timeout counts browsers' use of a web app, which the gateway does not see for --tcp services");
  if (tcp && !/^[a-z0-9-]{1,32}$/.test(name)) throw usage(`a --tcp service name has 1 to 32 letters, digits and '-', not '${name}'`);
  const start = values["start-timeout"];
  return {
    kind: "run",
    options: {
      ...sshArgs(positionals[0], values, cwd),
      gateway: positionals[0],
      appSocket,
      command,
      key,
      name,
      replace: values.replace ?? false,
      tls: values.tls ?? false,
      tcp,
      port: values.port === undefined ? null : Number(values.port),
      idleTimeoutMs,
      startTimeoutMs: start === undefined ? DEFAULT_START_TIMEOUT_MS : duration(start, "--start-timeout") * 1000,
      verbose: values.verbose ?? false,
    },
  };
}

/** Parses `args` with every option, then refuses those that do not apply in `context`, saying where they do. */
function parseOptions(context: Context, args: string[]): { values: Values; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    // node:util's advice about '--' is not how conductor's command line works.
    throw usage(messageOf(err).replace(/\. To specify a positional argument .*$/s, ""));
  }
  const listing = context === "list" && parsed.values.gateway !== undefined;
  for (const name of Object.keys(parsed.values)) {
    const spec = SPECS[name];
    if (spec.for.includes(context) && (context !== "list" || listing || !GATEWAY_ONLY.has(name))) continue;
    const where = spec.for.map((c) => (c === "run" ? "a run" : `conductor ${c}${c === "list" && GATEWAY_ONLY.has(name) ? " --gateway" : ""}`));
    throw usage(`${spec.short === undefined ? "--" + name : "-" + spec.short} goes with ${where.slice(0, -1).join(", ")}${where.length > 1 ? " and " : ""}${where.at(-1)}`);
  }
  return parsed;
}

function parseVerb(verb: Verb, values: Values, positionals: string[], cwd: string): ClientCommand {
  const want = (n: number, what: string): void => {
    if (positionals.length !== n) throw usage(`conductor ${verb} takes ${what}`);
  };
  switch (verb) {
    case "check":
      want(1, "a gateway, [user@]host[:port][/path/to/client.sock]");
      return { kind: "check", gateway: positionals[0], ssh: sshArgs(positionals[0], values, cwd), verbose: values.verbose ?? false };
    case "show":
      want(1, "a service name");
      return { kind: "show", name: wrap(() => normalizeName(positionals[0])), json: values.json ?? false };
    case "verify":
      want(2, "a service name and a key");
      return { kind: "verify", name: wrap(() => normalizeName(positionals[0])), key: positionals[1] };
    case "stop":
      want(1, "a service name");
      return { kind: "stop", name: wrap(() => normalizeName(positionals[0])) };
    case "tunnel": {
      if (positionals.length < 2) throw usage("conductor tunnel takes a host and at least one LOCAL:REMOTE forward");
      const ssh = sshArgs(positionals[0], values, cwd);
      if (ssh.destination.controlPath !== DEFAULT_CONTROL_PATH) throw usage(`conductor tunnel takes a host without a path: ${positionals[0]}`);
      return { kind: "tunnel", ssh, forwards: positionals.slice(1).map((spec) => wrap(() => parseForward(spec, cwd))), verbose: values.verbose ?? false };
    }
    case "list":
      if (positionals.length > 1) throw usage("conductor list takes at most one pattern");
      return {
        kind: "list",
        // Names are lowercase (as show finds them), so patterns are too.
        pattern: (positionals[0] ?? "*").toLowerCase(),
        json: values.json ?? false,
        gateway: values.gateway === undefined ? null : sshArgs(values.gateway, values, cwd),
        verbose: values.verbose ?? false,
      };
  }
}

/** The SSH side of a command: the gateway `text`, -o options, --agent, --connect-timeout. */
function sshArgs(text: string, values: Values, cwd: string): SshArgs {
  const sshOptions = values["ssh-option"] ?? [];
  for (const option of sshOptions) {
    if (!/^[A-Za-z]+[ =]/.test(option)) throw usage(`-o takes an ssh option as Name=value, not '${option}'`);
  }
  const timeout = values["connect-timeout"];
  return {
    destination: wrap(() => parseDestination(text)),
    sshOptions,
    ...(values.agent === undefined ? {} : { agent: agentSocket(values.agent, cwd) }),
    connectTimeout: timeout === undefined ? DEFAULT_CONNECT_TIMEOUT_SECONDS : duration(timeout, "--connect-timeout"),
  };
}

/** The absolute path of --agent's socket, checked as ssh will read it. */
function agentSocket(path: string, cwd: string): string {
  const absolute = resolve(cwd, path);
  wrap(() => identityAgent(absolute));
  return absolute;
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw usage(messageOf(err));
  }
}

/** Splits argv into conductor's part and the command; `dashes`: the command came after `--`. */
function splitCommand(argv: string[]): { head: string[]; command: string[]; dashes: boolean } {
  let operands = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") return { head: argv.slice(0, i), command: argv.slice(i + 1), dashes: true };
    if (operands === 2) return { head: argv.slice(0, i), command: argv.slice(i), dashes: false };
    if (takesValue(arg)) i++;
    else if (!arg.startsWith("-") || arg === "-") operands++;
  }
  return { head: argv, command: [], dashes: false };
}

function duration(text: string, option: string): number {
  return wrap(() => parseDuration(text, option));
}

function usage(reason: string): Error {
  return usageError("conductor", reason);
}
