/**
 * Child processes for tests: started as a given user, their output read as
 * lines, stopped (and waited for) when the test ends.
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { defer, type Cleanup } from "./cleanup.ts";
import { account, type AccountName } from "./accounts.ts";
import { isRoot } from "./env.ts";

/** Options of {@link startProcess}. */
export interface StartOptions {
  /** Run as this account (when the suite runs as root). */
  user?: AccountName;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep stdin open (a pipe) instead of /dev/null. */
  stdin?: boolean;
  /** Supplementary groups of `user` (as a service manager's SupplementaryGroups= gives them). */
  groups?: string[];
}

/** A running child with its output as lines. */
export class TestProcess {
  readonly child: ChildProcess;
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the process exited and its output was read to the end (a child that inherited the output delays this). */
  readonly closed: Promise<void>;
  #waiters: Array<() => void> = [];
  /** No more output will come: the output closed, or the process exited and a child holds its output for long. */
  #ended = false;

  constructor(child: ChildProcess) {
    this.child = child;
    this.#collect(child.stdout, this.stdout);
    this.#collect(child.stderr, this.stderr);
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => {
      // Output may still be on its way after the exit: lines count until it closes.
      setTimeout(() => { this.#ended = true; this.#wake(); }, 5000).unref();
      resolve({ code, signal });
    }));
    this.closed = new Promise((resolve) => child.once("close", () => {
      this.#ended = true;
      this.#wake();
      resolve();
    }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Lines of stdout parsed as JSON (lines that are not JSON are skipped). */
  json(stream: "stdout" | "stderr" = "stdout"): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this[stream]) {
      const value = parseObject(line);
      if (value !== undefined) out.push(value);
    }
    return out;
  }

  /**
   * Waits until `predicate` holds for a line on `stream` (each line is offered
   * once, in order); returns that line. The time limit is a failure guard.
   */
  async waitForLine(predicate: (line: string) => boolean, timeoutMs = 60_000, stream: "stdout" | "stderr" = "stdout"): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const lines = this[stream];
    for (let seen = 0; ; ) {
      for (; seen < lines.length; seen++) if (predicate(lines[seen])) return lines[seen];
      if (this.#ended) {
        throw new Error(`process exited (${this.child.exitCode ?? this.child.signalCode}) before the expected line;\nstdout:\n${this.stdout.join("\n")}\nstderr:\n${this.stderr.join("\n")}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a line;\nstdout:\n${this.stdout.join("\n")}\nstderr:\n${this.stderr.join("\n")}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  /** Waits until `predicate` holds for a JSON line on `stream`; returns that line, parsed. */
  async waitForJson(predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 60_000, stream: "stdout" | "stderr" = "stdout"): Promise<Record<string, unknown>> {
    const line = await this.waitForLine((text) => {
      const value = parseObject(text);
      return value !== undefined && predicate(value);
    }, timeoutMs, stream);
    return parseObject(line)!;
  }

  /** Sends SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  #collect(stream: NodeJS.ReadableStream | null, into: string[]): void {
    if (stream === null) return;
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      into.push(...parts);
      this.#wake();
    });
    stream.on("end", () => {
      if (partial !== "") into.push(partial);
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}

/** `line` parsed as a JSON object, or undefined when it is not one. */
function parseObject(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** Starts `command` and stops it when the test `t` ends. */
export function startProcess(t: Cleanup | null, command: string, args: string[], options: StartOptions = {}): TestProcess {
  const user = options.user !== undefined && isRoot ? account(options.user) : null;
  const env = { ...process.env, ...options.env };
  if (user !== null) {
    env.HOME = user.home;
    env.USER = user.name;
    env.LOGNAME = user.name;
  }
  // Node drops every supplementary group when it changes the user; setpriv(1) sets them.
  const groups = user !== null && options.groups !== undefined && options.groups.length > 0 ? options.groups : null;
  const child = groups === null
    ? spawn(command, args, { cwd: options.cwd ?? "/", env, stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe"], uid: user?.uid, gid: user?.gid })
    : spawn("setpriv", [`--reuid=${user!.uid}`, `--regid=${user!.gid}`, `--groups=${groups.join(",")}`, "--", command, ...args],
      { cwd: options.cwd ?? "/", env, stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe"] });
  const proc = new TestProcess(child);
  if (t !== null) defer(t, () => proc.stop());
  return proc;
}
