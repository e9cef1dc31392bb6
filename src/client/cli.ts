/**
 * The command line of `conductor`, compatible with the original's:
 * `conductor [-r] [-v] [-k KEY] [user@]host[:port][/path/client.sock] app.sock -- command [args...]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { isAbsolute, resolve } from "node:path";
import { ConductorError, messageOf } from "../lib/errors.ts";
import { normalizeKey } from "../control/protocol.ts";
import { parseDestination, type Destination } from "../ssh/destination.ts";

/** `conductor --help`. */
export const CLIENT_HELP = `Usage: conductor [options] [user@]host[:port][/path/to/client.sock] APP.SOCK -- COMMAND [ARG...]

Run COMMAND, an app listening on the UNIX socket APP.SOCK, and publish it on
the conductor gateway HOST through SSH. Progress is printed as JSON lines on
stdout; the "live" line carries the URLs and the token: open
https://URL/_conductor/auth/TOKEN in a browser.

The app finds its socket path in $CONDUCTOR_SOCKET, e.g.
  conductor gw.example.org '$HOME/lab.sock' -- \\
    sh -c 'exec jupyter lab --no-browser --sock "$CONDUCTOR_SOCKET"'

Options:
  -k, --key KEY        publish as https://KEY-USER.DOMAIN/: letters, digits
                       and '-' (default: none is sent, the gateway uses 'none')
  -r, --replace        stop the process already listening on APP.SOCK
                       instead of exiting with status 2
  -o, --ssh-option OPTION
                       pass '-o OPTION' to ssh, e.g. -o Port=2222 or
                       -o IdentityFile=~/.ssh/cluster; repeatable
  -v, --verbose        debug logs (JSON lines on stderr)
  -V, --version        print the version and exit
  -h, --help           print this help and exit

The control socket path defaults to /var/run/conductor/client on HOST.
SSH uses your own ~/.ssh/config, agent and known_hosts, in batch mode (no
password prompts). Several runs to one gateway share one SSH connection.

Environment:
  CONDUCTOR_TOKEN      the token that opens the app (removed before COMMAND
                       starts); default: 32 random characters
  CONDUCTOR_SSH        the ssh program to use (default: ssh)
  CONDUCTOR_SOCKET     set for COMMAND: the absolute path of APP.SOCK

Exit status: 0 when COMMAND exits 0 (or conductor is stopped by a signal),
1 on any error or when COMMAND fails, 2 when APP.SOCK is in use.
See conductor(1) and conductor(7).
`;

/** What the client command line asks for. */
export type ClientCommand =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "run"; options: ClientArgs };

/** A parsed `conductor` run. */
export interface ClientArgs {
  destination: Destination;
  /** Absolute path of the app socket. */
  appSocket: string;
  command: string[];
  key: string | null;
  replace: boolean;
  verbose: boolean;
  sshOptions: string[];
}

const OPTIONS = {
  key: { type: "string", short: "k" },
  replace: { type: "boolean", short: "r" },
  verbose: { type: "boolean", short: "v" },
  "ssh-option": { type: "string", short: "o", multiple: true },
  version: { type: "boolean", short: "V" },
  help: { type: "boolean", short: "h" },
} as const;

/** Options that take a value, as written on the command line. */
const TAKES_VALUE = new Set(["-k", "--key", "-o", "--ssh-option"]);

/**
 * Parses the arguments. The command starts after `--`, or else at the third
 * operand, so the command's own options are never read as conductor's.
 */
export function parseClientArgs(argv: string[], cwd = process.cwd()): ClientCommand {
  const { head, command } = splitCommand(argv);
  let parsed;
  try {
    parsed = parseArgs({ args: head, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw usage(messageOf(err));
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  if (positionals.length < 2) throw usage("a gateway and an app socket are needed");
  if (command.length === 0) throw usage("no command to run: put it after '--'");
  const destination = parseDestination(positionals[0]);
  const appSocket = isAbsolute(positionals[1]) ? positionals[1] : resolve(cwd, positionals[1]);
  if (appSocket.includes(":")) throw usage(`the app socket path ${appSocket} contains ':', which ssh cannot forward; choose another path`);
  if (Buffer.byteLength(appSocket) > 107) throw usage(`the app socket path ${appSocket} is longer than the 107 bytes a UNIX socket path may have; choose a shorter one`);
  for (const option of values["ssh-option"] ?? []) {
    if (!/^[A-Za-z]+[ =]/.test(option)) throw usage(`-o takes an ssh option as Name=value, not '${option}'`);
  }
  let key: string | null = null;
  if (values.key !== undefined && values.key !== "") {
    try {
      key = normalizeKey(values.key);
    } catch (err) {
      throw usage(messageOf(err));
    }
  }
  return {
    kind: "run",
    options: {
      destination,
      appSocket,
      command,
      key,
      replace: values.replace ?? false,
      verbose: values.verbose ?? false,
      sshOptions: values["ssh-option"] ?? [],
    },
  };
}

/** Splits argv into conductor's part and the command. */
function splitCommand(argv: string[]): { head: string[]; command: string[] } {
  let operands = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") return { head: argv.slice(0, i), command: argv.slice(i + 1) };
    if (operands === 2) return { head: argv.slice(0, i), command: argv.slice(i) };
    if (TAKES_VALUE.has(arg)) i++;
    else if (!arg.startsWith("-") || arg === "-") operands++;
  }
  return { head: argv, command: [] };
}

function usage(reason: string): ConductorError {
  return new ConductorError("CONDUCTOR_ERR_USAGE", `${reason}\nTry 'conductor --help'.`);
}
