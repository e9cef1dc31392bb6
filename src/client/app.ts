/**
 * The user's app: started in its own process group with the socket path in
 * its environment, its output turned into `data` events, waited for until it
 * accepts connections on its socket, and stopped as a whole group.
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { constants } from "node:os";
import { StringDecoder } from "node:string_decoder";
import { socketAnswers } from "../lib/socket_check.ts";
import { ConductorError } from "../lib/errors.ts";
import type { EventSink } from "./events.ts";

/** Settings of {@link startApp}. */
export interface AppOptions {
  /** Program and arguments. */
  command: string[];
  /** The socket the app listens on (absolute), exported as CONDUCTOR_SOCKET. */
  socket: string;
  /** The environment without CONDUCTOR_TOKEN. */
  env: NodeJS.ProcessEnv;
  events: EventSink;
  /** Time between SIGTERM and SIGKILL when stopping, in ms. Default 5 s. */
  graceMs?: number;
}

/** A running app. */
export interface App {
  readonly pid: number;
  /** Resolves with the exit status (a signal gives minus its number, as Python reports it). */
  readonly exited: Promise<number>;
  /** True once the process has exited. */
  readonly done: boolean;
  /** Resolves when the app accepts a connection on its socket; rejects if it exits first. */
  ready(pollMs?: number): Promise<void>;
  /**
   * SIGTERM to the whole group, SIGKILL after the grace time; resolves with
   * the status once the app's output has been read to its end (its last
   * `data` events come before). Safe to call twice.
   */
  stop(): Promise<number>;
}

/** Starts the app and emits `execute`; `data` events follow as it writes. */
export function startApp(options: AppOptions): Promise<App> {
  const graceMs = options.graceMs ?? 5000;
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(options.command[0], options.command.slice(1), {
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...options.env, CONDUCTOR_SOCKET: options.socket },
      });
    } catch (err) {
      reject(new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot start ${options.command[0]}: ${(err as Error).message}`));
      return;
    }
    let status: number | null = null;
    const exited = new Promise<number>((done) => {
      child.once("exit", (code, signal) => {
        status = code ?? -(signal ? constants.signals[signal] : 1);
        done(status);
      });
    });
    child.once("error", (err) => {
      reject(new ConductorError("CONDUCTOR_ERR_USAGE",
        `Cannot start ${options.command[0]}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such program in PATH" : err.message}`));
    });
    child.once("spawn", () => {
      const pid = child.pid!;
      options.events({ state: "execute", command: options.command, pid });
      const closed: Array<Promise<unknown>> = [];
      for (const kind of ["stdout", "stderr"] as const) {
        const decoder = new StringDecoder("utf8");
        const stream = child[kind]!;
        stream.on("data", (chunk: Buffer) => {
          const data = decoder.write(chunk);
          if (data !== "") options.events({ state: "data", kind, data });
        });
        stream.on("end", () => {
          const rest = decoder.end();
          if (rest !== "") options.events({ state: "data", kind, data: rest });
        });
        closed.push(new Promise((done) => stream.once("close", done)));
      }
      // A process the app left outside its group may hold the output open: the wait for it is bounded.
      const outputRead = (): Promise<unknown> =>
        Promise.race([Promise.all(closed), new Promise((done) => setTimeout(done, OUTPUT_WAIT_MS).unref())]);
      let stopping: Promise<number> | null = null;
      resolve({
        pid,
        exited,
        get done() { return status !== null; },
        async ready(pollMs = 100) {
          for (;;) {
            if (status !== null) {
              throw new ConductorError("CONDUCTOR_ERR_SOCKET_UNREACHABLE",
                `Cannot publish the app: it exited (status ${status}) before listening on ${options.socket}`);
            }
            if (await socketAnswers(options.socket, 1000)) return;
            await Promise.race([new Promise((r) => setTimeout(r, pollMs)), exited]);
          }
        },
        stop() {
          stopping ??= terminateGroup(pid, graceMs).then(outputRead).then(() => exited);
          return stopping;
        },
      });
    });
  });
}

/** Longest wait for the output of an app that has exited to be read to its end, in ms. */
const OUTPUT_WAIT_MS = 2000;

/** SIGTERM to process group `pgid`, then SIGKILL to what is left after `graceMs`; resolves when the group is empty. */
async function terminateGroup(pgid: number, graceMs: number): Promise<void> {
  if (!signalGroup(pgid, "SIGTERM")) return;
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await sleep(50);
    if (!signalGroup(pgid, 0)) return;
  }
  signalGroup(pgid, "SIGKILL");
  // Bounded: an unreaped zombie keeps the group "alive" where nothing reaps orphans.
  for (let i = 0; i < 100 && signalGroup(pgid, 0); i++) await sleep(20);
}

/** Sends `signal` (0 probes) to group `pgid`; false when the group no longer exists. */
function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
