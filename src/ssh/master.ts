/**
 * One OpenSSH master connection to the gateway, driven through its control
 * socket: started in the background (`-f` with `ControlPersist`), checked,
 * asked for socket forwards, used for remote commands, and stopped.
 *
 * Every program is spawned with an argument array; the destination comes
 * after `--`, so no argument can be taken for an option.
 *
 * @module
 */
import { execFile, spawn } from "node:child_process";
import { useAgentIfRunning } from "../agent/agent.ts";
import { agentFiles, isConductorAgent } from "../agent/files.ts";
import { ConductorError } from "../lib/errors.ts";
import type { Destination } from "./destination.ts";

/** Seconds ssh has to reach the gateway and finish its handshake (`ConnectTimeout`) by default. */
export const DEFAULT_CONNECT_TIMEOUT_SECONDS = 30;

/** Seconds conductor lets the master's ssh take beyond its `ConnectTimeout` (authentication) before it gives up itself. */
const AUTH_SECONDS = 30;

/** Where and how a command reaches the gateway: the command line's part for SSH. */
export interface SshTarget {
  destination: Destination;
  /** `-o` options for ssh (`Name=value`). */
  sshOptions: readonly string[];
  /** A conductor-agent's socket (--agent). */
  agent?: string;
  /** ssh's `ConnectTimeout`, in seconds. Default {@link DEFAULT_CONNECT_TIMEOUT_SECONDS}. */
  connectTimeout?: number;
}

/** How to reach the gateway over SSH. */
export interface SshSettings {
  /** The ssh program (`CONDUCTOR_SSH`, default "ssh"). */
  ssh: string;
  destination: Destination;
  /** Extra ssh options as `-o` values (`Name=value`), first in the command line so they win. */
  options: readonly string[];
  /** Seconds the master stays up after its last channel closes, should every conductor using it die. */
  persistSeconds: number;
  /** Seconds between keep-alive probes; the master gives up after 3 missed ones. */
  aliveInterval: number;
  /** ssh's `ConnectTimeout`, in seconds, unless `options` set one. */
  connectTimeout: number;
  /** Runs before each SSH operation: the master, a forward, a remote command (a conductor-agent's `use`: unlock it, mark use). */
  beforeSsh?: () => Promise<void>;
}

/**
 * The settings of conductor's SSH connections to `target`: the ssh of
 * `CONDUCTOR_SSH` (default ssh), a master that outlives its last channel by
 * 60 s, keep-alive probes every 15 s. With a conductor-agent (`agent`, or
 * the one `SSH_AUTH_SOCK` names), it is unlocked and marked used before each
 * SSH operation.
 */
export function clientSsh(env: NodeJS.ProcessEnv, target: SshTarget): SshSettings {
  const { destination, sshOptions: options, agent } = target;
  const settings: SshSettings = {
    ssh: env.CONDUCTOR_SSH || "ssh", destination, options, persistSeconds: 60, aliveInterval: 15,
    connectTimeout: target.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_SECONDS,
  };
  const socket = agent ?? env.SSH_AUTH_SOCK;
  if (socket === undefined || (agent === undefined && !isConductorAgent(socket))) return settings;
  const files = agentFiles(socket);
  if (agent !== undefined) settings.options = [...options, identityAgent(agent)];
  settings.beforeSsh = () => useAgentIfRunning(files);
  return settings;
}

/**
 * ssh's `IdentityAgent` option for the socket `path`, quoted for spaces and
 * with `%` doubled, since ssh expands `%` tokens there; a path ssh would read
 * otherwise (a quote, `${`, a control character) is refused.
 */
export function identityAgent(path: string): string {
  if (/["\x00-\x1f\x7f]|\$\{/.test(path)) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot use the agent socket ${JSON.stringify(path)}: ssh cannot be given a path with a quote, '\${' or a control character; use another path`);
  }
  return `IdentityAgent="${path.replace(/%/g, "%%")}"`;
}

/** What an ssh invocation printed and how it ended; `timedOut`: conductor stopped it. */
interface SshResult {
  code: number;
  stdout: string;
  stderr: string;
  timedOut?: boolean;
}

/** The `ConnectTimeout` ssh will use: the one of the `-o` options (which come first and win), else conductor's. */
export function connectTimeoutOf(settings: SshSettings): number {
  for (const option of settings.options) {
    const m = /^ConnectTimeout\s*[= ]\s*([0-9]+)\s*$/i.exec(option);
    if (m !== null) return Number(m[1]);
  }
  return settings.connectTimeout;
}

/** Options of the master and of connections it makes; user options come first and win. */
function connectionOptions(settings: SshSettings): string[] {
  const args: string[] = [];
  for (const option of settings.options) args.push("-o", option);
  args.push(
    "-o", "BatchMode=yes",
    "-o", "ExitOnForwardFailure=yes",
    "-o", `ServerAliveInterval=${settings.aliveInterval}`,
    "-o", "ServerAliveCountMax=3",
    "-o", "StreamLocalBindUnlink=yes",
    "-o", `ConnectTimeout=${settings.connectTimeout}`,
  );
  return args;
}

function destinationArgs(destination: Destination): string[] {
  const args: string[] = [];
  if (destination.port !== null) args.push("-p", String(destination.port));
  if (destination.user !== null) args.push("-l", destination.user);
  args.push("--", destination.host);
  return args;
}

/** A master connection reached through `controlPath`. */
export class SshMaster {
  readonly settings: SshSettings;
  readonly controlPath: string;

  constructor(settings: SshSettings, controlPath: string) {
    this.settings = settings;
    this.controlPath = controlPath;
  }

  /**
   * Starts the master in the background; resolves once it is authenticated
   * and ready, rejects with ssh's own message (`CONDUCTOR_ERR_SSH`) otherwise.
   * ssh gives up on its own after its `ConnectTimeout`, saying why; conductor
   * stops it 30 s later (authentication taking that long).
   */
  async start(): Promise<void> {
    const limit = connectTimeoutOf(this.settings) + AUTH_SECONDS;
    await this.settings.beforeSsh?.();
    const args = [
      "-f", "-N", "-T",
      "-o", "ControlMaster=yes",
      "-o", `ControlPath=${this.controlPath}`,
      "-o", `ControlPersist=${this.settings.persistSeconds}`,
      ...connectionOptions(this.settings),
      ...destinationArgs(this.settings.destination),
    ];
    const result = await this.#run(args, limit * 1000, true);
    if (result.timedOut) {
      const said = sshSaid(result.stderr);
      throw new ConductorError("CONDUCTOR_ERR_SSH", `Cannot connect to ${this.#where()}: ssh had not logged in after ${limit} s, so conductor stopped it${said === null ? "" : ` (ssh said: ${said})`}; check that the gateway's sshd answers (ssh -v ${this.#where()})`);
    }
    if (result.code !== 0) {
      throw new ConductorError("CONDUCTOR_ERR_SSH", `Cannot connect to ${this.#where()}: ${sshMessage(result)}`);
    }
  }

  /** The master's pid when it answers on its control socket, else null. */
  async check(): Promise<number | null> {
    const result = await this.#control(["-O", "check"]);
    if (result.code !== 0) return null;
    const m = /pid=([0-9]+)/.exec(result.stderr);
    return m ? Number(m[1]) : 0;
  }

  /** Forwards the local socket `local` to `remote` on the gateway (`-L local:remote`). */
  async forwardLocal(local: string, remote: string): Promise<void> {
    await this.#forward("forward", "-L", `${local}:${remote}`);
  }

  /** Forwards the gateway socket `remote` to the local socket `local` (`-R remote:local`). */
  async forwardRemote(remote: string, local: string): Promise<void> {
    await this.#forward("forward", "-R", `${remote}:${local}`);
  }

  /** Cancels a forward made by {@link forwardLocal}; a gone master is fine. */
  async cancelLocal(local: string, remote: string): Promise<void> {
    await this.#control(["-O", "cancel", "-L", `${local}:${remote}`]);
  }

  /** Cancels a forward made by {@link forwardRemote}; a gone master is fine. */
  async cancelRemote(remote: string, local: string): Promise<void> {
    await this.#control(["-O", "cancel", "-R", `${remote}:${local}`]);
  }

  /**
   * Runs a command on the gateway through the master, and only through it;
   * the arguments must need no quoting. Throws when the master refuses a new
   * session (sshd's MaxSessions) or is gone.
   */
  async exec(command: readonly string[], timeoutMs = 30_000): Promise<SshResult> {
    for (const word of command) {
      if (!/^[A-Za-z0-9._\/:=+-]+$/.test(word)) {
        throw new ConductorError("CONDUCTOR_ERR_SSH", `Cannot run ${JSON.stringify(word)} on the gateway: it would need shell quoting`);
      }
    }
    await this.settings.beforeSsh?.();
    // Without its master, ssh would log in anew, silently: the ProxyCommand that fails stops that (a master never uses it).
    const result = await this.#run(["-S", this.controlPath, "-o", "ControlMaster=no", "-o", "ProxyCommand=false", "-T",
      ...destinationArgs(this.settings.destination), ...command], timeoutMs, false);
    if (result.code !== 255) return result;
    if (/Session open refused/i.test(result.stderr)) {
      throw new ConductorError("CONDUCTOR_ERR_SSH", `Cannot run ${command[0]} on ${this.#where()}: the SSH connection refused a new session, as sshd's MaxSessions (10 by default) is reached by the runs and commands sharing it; raise MaxSessions in the gateway's sshd_config, or end some of them`);
    }
    if (await this.check() === null) {
      throw new ConductorError("CONDUCTOR_ERR_SSH", `Cannot run ${command[0]} on ${this.#where()}: the SSH master connection (${this.controlPath}) is gone`);
    }
    return result;
  }

  /** Asks the master to exit; a gone master is fine. */
  async exit(): Promise<void> {
    await this.#control(["-O", "exit"]);
  }

  async #forward(op: string, flag: string, spec: string): Promise<void> {
    await this.settings.beforeSsh?.();
    const result = await this.#control(["-O", op, flag, spec]);
    if (result.code !== 0) {
      throw new ConductorError("CONDUCTOR_ERR_SSH", `Cannot forward ${flag} ${spec} through ${this.#where()}: ${sshMessage(result)}`);
    }
  }

  #control(op: string[]): Promise<SshResult> {
    return this.#run(["-S", this.controlPath, ...op, ...destinationArgs(this.settings.destination)], 30_000, false);
  }

  #where(): string {
    const d = this.settings.destination;
    return `${d.user !== null ? d.user + "@" : ""}${d.host}${d.port !== null ? ":" + d.port : ""}`;
  }

  /** Runs ssh; with `detach`, stdout/stderr of a backgrounded master are not waited for. */
  #run(args: string[], timeoutMs: number, detach: boolean): Promise<SshResult> {
    if (!detach) {
      return new Promise((resolve) => {
        execFile(this.settings.ssh, args, { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 255;
          resolve({ code, stdout, stderr: stderr || (err && typeof (err as { code?: unknown }).code === "string" ? err.message : "") });
        });
      });
    }
    return new Promise((resolve) => {
      // The backgrounded master keeps ssh's stdio only until it detaches; collect stderr until the foreground exits.
      const child = spawn(this.settings.ssh, args, { stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (chunk: string) => { if (stderr.length < 8192) stderr += chunk; });
      let timedOut = false;
      const timer = setTimeout(() => { timedOut = true; child.kill("SIGTERM"); }, timeoutMs);
      child.on("error", (err) => {
        clearTimeout(timer);
        resolve({ code: 255, stdout: "", stderr: `cannot run ${this.settings.ssh}: ${err.message}` });
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        child.stderr.destroy();
        resolve({ code: code ?? 255, stdout: "", stderr, timedOut });
      });
    });
  }
}

/** ssh's error text, trimmed to its meaningful lines, or null when it said nothing. */
function sshSaid(stderr: string): string | null {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("Warning: Permanently added"));
  return lines.length > 0 ? lines.slice(-3).join("; ") : null;
}

/** ssh's error text, or its exit status when it said nothing. */
function sshMessage(result: SshResult): string {
  return sshSaid(result.stderr) ?? `ssh exited with status ${result.code}`;
}
