/**
 * The demo's child processes: started with an argument array, their output
 * kept as lines, awaited for a JSON line, stopped with SIGTERM.
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

/** A running child and what it printed so far. */
export interface Child {
  readonly stdout: string[];
  readonly stderr: string[];
  /** False once it has exited. */
  readonly running: boolean;
  /** Resolves with its exit code (null after a signal). */
  readonly exited: Promise<number | null>;
  /** The first JSON object on `stream` that `match` accepts, also one printed before; rejects if the child exits first or `timeoutMs` passes. */
  waitForJson(match: (line: Record<string, unknown>) => boolean, timeoutMs: number, stream?: "stdout" | "stderr"): Promise<Record<string, unknown>>;
  /** SIGTERM, and SIGKILL after 10 s; resolves once it has exited. Safe to call twice. */
  stop(): Promise<void>;
}

/** Starts `command` with `args`; `env` is added to this process's environment. */
export function startChild(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const child: ChildProcess = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  const lines = { stdout: [] as string[], stderr: [] as string[] };
  const listeners = new Set<() => void>();
  let running = true;
  const exited = new Promise<number | null>((resolve) => {
    child.once("error", () => { running = false; resolve(127); });
    child.once("exit", (code) => { running = false; resolve(code); });
  }).finally(() => { for (const wake of listeners) wake(); });
  const ended = { stdout: false, stderr: false };
  for (const stream of ["stdout", "stderr"] as const) {
    createInterface({ input: child[stream]! }).on("line", (line) => {
      lines[stream].push(line);
      for (const wake of listeners) wake();
    }).on("close", () => {
      ended[stream] = true;
      for (const wake of listeners) wake();
    });
  }
  const parse = (line: string): Record<string, unknown> | null => {
    try {
      const value: unknown = JSON.parse(line);
      return value !== null && typeof value === "object" && !Array.isArray(value) ? value as Record<string, unknown> : null;
    } catch {
      return null;
    }
  };
  return {
    ...lines,
    get running() { return running; },
    exited,
    waitForJson(match, timeoutMs, stream = "stdout") {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`${command} printed no awaited line within ${timeoutMs / 1000} s`)), timeoutMs);
        const check = (): void => {
          const found = lines[stream].map(parse).find((v) => v !== null && match(v));
          if (found) done(null, found);
          else if (!running && ended[stream]) done(new Error(`${command} exited: ${lines.stderr.slice(-5).join(" ").trim()}`));
        };
        const done = (err: Error | null, value?: Record<string, unknown>): void => {
          clearTimeout(timer);
          listeners.delete(check);
          if (err === null) resolve(value!);
          else reject(err);
        };
        listeners.add(check);
        check();
      });
    },
    async stop() {
      if (!running) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
