/**
 * conductor-agent's command line: `start`, `stop`, `status`, `lock`,
 * `unlock`, `use`, with `--socket`, `--idle`, `--key`, `--json`,
 * `--foreground`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { messageOf, usageError } from "../lib/errors.ts";
import { parseDuration } from "../lib/duration.ts";
import { agentFiles, defaultSocket, type AgentFiles } from "./files.ts";

/** Seconds without use before the agent locks, by default. */
export const DEFAULT_IDLE_SECONDS = 60;

/** `conductor-agent --help`. */
export const AGENT_HELP = `Usage: conductor-agent start [--socket PATH] [--idle DURATION] [--key FILE]... [--json] [--foreground]
       conductor-agent use | unlock | lock | stop [--socket PATH]
       conductor-agent status [--socket PATH] [--json]

Keep one ssh-agent for your SSH keys, which locks itself after a while
without use and is unlocked again, without your key's passphrase, by whatever
uses it next. conductor runs 'use' before each SSH connection it makes when
SSH_AUTH_SOCK names this agent.

  eval "$(conductor-agent start --key ~/.ssh/id_ed25519)"

Commands:
  start          start the agent (or adopt the one already running on the
                 socket), load the keys given (asking their passphrases),
                 and print SSH_AUTH_SOCK=...; export SSH_AUTH_SOCK; for eval
  use            unlock the agent if it is locked, and mark it used now
  unlock         the same
  lock           lock the agent now: it lists no keys and signs nothing
  status         socket, pids, locked or not, seconds since the last use,
                 and the keys' fingerprints when unlocked
  stop           stop the agent and its locker; their files go

Options:
      --socket PATH    the agent's socket (default
                       $XDG_RUNTIME_DIR/conductor/agent.sock, else
                       ~/.local/state/conductor/agent-HOST.sock); under 100
                       bytes, in a directory only you can enter
      --idle DURATION  lock after DURATION without use (90, 30s, 15m, 2h;
                       default ${DEFAULT_IDLE_SECONDS}s)
      --key FILE       load this key with ssh-add; repeatable
      --json           print one JSON object instead (start, status)
      --foreground     stay attached (a systemd user unit) instead of
                       detaching once the agent answers
  -V, --version        print the version and exit
  -h, --help           print this help and exit

The lock password is made at random and kept in PATH.password (mode 0600);
it reaches ssh-add through a one-shot SSH_ASKPASS program, never a command
line or the environment. Should the locker die, the agent stops within about
10 seconds; should its state file go, the locker stops it.
Exit status: 0 on success, 1 on an error, 2 for a wrong command line.
See conductor-agent(1).
`;

/** What the command line asks for. */
export type AgentCommand =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "start"; files: AgentFiles; idleSeconds: number; keys: string[]; json: boolean; foreground: boolean }
  | { kind: "use" | "unlock" | "lock" | "stop"; files: AgentFiles }
  | { kind: "status"; files: AgentFiles; json: boolean };

const COMMANDS = ["start", "use", "unlock", "lock", "status", "stop"] as const;

/** Parses conductor-agent's arguments; throws `CONDUCTOR_ERR_USAGE` with the reason. */
export function parseAgentArgs(argv: string[], env: NodeJS.ProcessEnv, cwd = process.cwd()): AgentCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        socket: { type: "string" },
        idle: { type: "string" },
        key: { type: "string", multiple: true },
        json: { type: "boolean" },
        foreground: { type: "boolean" },
        version: { type: "boolean", short: "V" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw usage(messageOf(err));
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  const command = positionals[0];
  if (positionals.length !== 1 || !(COMMANDS as readonly string[]).includes(command)) {
    throw usage(`give one command: ${COMMANDS.join(", ")}`);
  }
  const files = wrap(() => agentFiles(values.socket === undefined ? defaultSocket(env) : resolve(cwd, values.socket)));
  if (command !== "start" && (values.idle !== undefined || values.key !== undefined || values.foreground !== undefined)) {
    throw usage("--idle, --key and --foreground go with start");
  }
  if (command !== "start" && command !== "status" && values.json !== undefined) throw usage("--json goes with start and status");
  switch (command) {
    case "start":
      return {
        kind: "start",
        files,
        idleSeconds: values.idle === undefined ? DEFAULT_IDLE_SECONDS : wrap(() => parseDuration(values.idle!, "--idle")),
        keys: (values.key ?? []).map((k) => resolve(cwd, k)),
        json: values.json ?? false,
        foreground: values.foreground ?? false,
      };
    case "status":
      return { kind: "status", files, json: values.json ?? false };
    default:
      return { kind: command as "use" | "unlock" | "lock" | "stop", files };
  }
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw usage(messageOf(err));
  }
}

function usage(message: string): Error {
  return usageError("conductor-agent", message);
}
