/**
 * The gateway's own nginx for TCP streams: started as the gateway's child
 * (same user, `daemon off`), its log read from stderr, reloaded with SIGHUP
 * and its outcome read from that log (nginx keeps its whole old
 * configuration when a reload fails, and says so only there), restarted
 * with backoff if it dies, stopped with the gateway.
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { ConductorError, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";

/** How long nginx may take to start or to reload before the gateway gives up, in ms. */
const OUTCOME_TIMEOUT_MS = 30_000;
/** Lines of nginx's log kept for error reports. */
const LOG_LINES = 200;

/** Where and how to run nginx. */
export interface NginxCommand {
  program: string;
  /** nginx's prefix (-p). */
  prefix: string;
  /** The main configuration (-c). */
  config: string;
}

/** A line of nginx's log that says it failed. */
const FAILURE_RE = /\[(emerg|alert|crit)\]/;
/** The line of nginx's log that says new workers run the configuration. */
const STARTED_RE = /start worker process \d+/;

/** An nginx the gateway runs and supervises. */
export class OwnNginx {
  readonly #command: NginxCommand;
  readonly #logger: Logger;
  #child: ChildProcess | null = null;
  #log: string[] = [];
  #watchers = new Set<(line: string) => void>();
  #stopping = false;
  #restartTimer: NodeJS.Timeout | null = null;
  #backoffMs = 1000;
  /** Worker pids that accept connections: started, and not yet told to shut down. */
  #workers = new Set<number>();

  constructor(command: NginxCommand, logger: Logger) {
    this.#command = command;
    this.#logger = logger;
  }

  /** True while an nginx master runs. */
  get running(): boolean {
    return this.#child !== null;
  }

  /**
   * Checks the configuration files with `nginx -t`; returns nginx's
   * complaint, or null when they are fine. Throws when nginx cannot run.
   */
  async test(): Promise<string | null> {
    const { program, prefix, config } = this.#command;
    return new Promise((resolve, reject) => {
      const child = spawn(program, ["-t", "-q", "-p", prefix, "-c", config, "-e", "stderr"], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => { if (err.length < 8192) err += chunk; });
      child.on("error", (e) => reject(new ConductorError("CONDUCTOR_ERR_NGINX",
        `Cannot run nginx for the streams, ${program}: ${messageOf(e)}; install nginx and its stream module (Debian: nginx-light and libnginx-mod-stream), or give conductor-server --nginx`)));
      child.on("close", (code) => resolve(code === 0 ? null : (err.trim() || `${program} -t exited with status ${code}`)));
    });
  }

  /** Starts nginx and waits until its workers run; throws with nginx's own words if it cannot. */
  async start(): Promise<void> {
    if (this.#child !== null) return;
    this.#stopping = false;
    const { program, prefix, config } = this.#command;
    const child = spawn(program, ["-p", prefix, "-c", config, "-e", "stderr"], { stdio: ["ignore", "ignore", "pipe"] });
    this.#child = child;
    const outcome = this.#outcome(null);
    let buffered = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) this.#onLine(line);
    });
    const exited = new Promise<string>((resolve) => {
      child.on("error", (e) => resolve(`cannot run ${program}: ${messageOf(e)}`));
      child.on("exit", (code, signal) => resolve(`nginx exited (${signal ?? "status " + code})`));
    });
    child.on("exit", (code, signal) => this.#onExit(child, code, signal));
    const result = await Promise.race([outcome, exited.then((why) => ({ ok: false as const, error: why }))]);
    if (!result.ok) {
      child.kill("SIGKILL");
      const said = FAILURE_RE.test(result.error) || this.#log.length === 0 ? "" : `; its last words: ${this.recentLog(3).join(" | ")}`;
      throw new ConductorError("CONDUCTOR_ERR_NGINX", `Cannot start nginx for the streams: ${result.error}${said}`);
    }
    this.#logger.info("nginx for streams started", { pid: child.pid, config });
  }

  /**
   * Makes nginx read its configuration again (SIGHUP) and waits for the
   * outcome in its log: new workers started, or an error (nginx then keeps
   * running its previous configuration). Throws with nginx's words.
   */
  async reload(): Promise<void> {
    const child = this.#child;
    if (child === null) return this.start();
    const old = new Set(this.#workers);
    // "signal 1 (SIGHUP) received ..., reconfiguring", then ": reconfiguring" when it starts.
    const outcome = this.#outcome((line) => /: reconfiguring$/.test(line));
    child.kill("SIGHUP");
    const result = await outcome;
    if (!result.ok) throw new ConductorError("CONDUCTOR_ERR_NGINX", `nginx did not take the new configuration: ${result.error}`);
    // Until the old workers let go of the listening sockets, they may accept a connection for the old configuration.
    await this.#until(() => [...old].every((pid) => !this.#workers.has(pid)), "the old workers to stop accepting");
  }

  /** Waits, line by line of nginx's log, until `done` holds; throws after the time limit, naming `what`. */
  async #until(done: () => boolean, what: string): Promise<void> {
    if (done()) return;
    await new Promise<void>((resolve, reject) => {
      const watch = (): void => {
        if (!done()) return;
        clearTimeout(timer);
        this.#watchers.delete(watch);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#watchers.delete(watch);
        reject(new ConductorError("CONDUCTOR_ERR_NGINX", `nginx did not say within ${OUTCOME_TIMEOUT_MS / 1000} s that it had reloaded: waiting for ${what}`));
      }, OUTCOME_TIMEOUT_MS);
      this.#watchers.add(watch);
    });
  }

  /** The last lines of nginx's log, for error reports. */
  recentLog(lines = 20): string[] {
    return this.#log.slice(-lines);
  }

  /** Stops nginx at once (open relays are cut) and waits for it. Safe to call twice. */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer !== null) clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
    const child = this.#child;
    if (child === null) return;
    const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await gone;
    clearTimeout(kill);
  }

  /**
   * Resolves with the outcome of a start or reload: the first failure line,
   * or the first "start worker process" line, after the line `marker` finds
   * (the reload's "reconfiguring"; null: from the first line on).
   */
  #outcome(marker: ((line: string) => boolean) | null): Promise<{ ok: true } | { ok: false; error: string }> {
    return new Promise((resolve) => {
      let on = marker === null;
      const done = (result: { ok: true } | { ok: false; error: string }): void => {
        clearTimeout(timer);
        this.#watchers.delete(watch);
        resolve(result);
      };
      const watch = (line: string): void => {
        if (!on) {
          // Lines before the marker are another operation's.
          on = marker!(line);
          return;
        }
        if (FAILURE_RE.test(line)) {
          done({ ok: false, error: line.replace(/^.*?\[(emerg|alert|crit)\] (?:[0-9]+#[0-9]+: )?/, "") });
        } else if (STARTED_RE.test(line)) {
          done({ ok: true });
        }
      };
      const timer = setTimeout(() => done({ ok: false, error: `no answer within ${OUTCOME_TIMEOUT_MS / 1000} s; its last words: ${this.recentLog(3).join(" | ")}` }), OUTCOME_TIMEOUT_MS);
      this.#watchers.add(watch);
    });
  }

  #onLine(line: string): void {
    const started = /start worker process (\d+)/.exec(line);
    if (started !== null) this.#workers.add(Number(started[1]));
    const quitting = /(\d+)#\d+: (?:gracefully shutting down|exiting)$/.exec(line) ?? /worker process (\d+) exited/.exec(line);
    if (quitting !== null) this.#workers.delete(Number(quitting[1]));
    this.#log.push(line);
    if (this.#log.length > LOG_LINES) this.#log.splice(0, this.#log.length - LOG_LINES);
    if (FAILURE_RE.test(line)) this.#logger.warn("nginx", { line });
    else this.#logger.debug("nginx", { line });
    for (const watch of [...this.#watchers]) watch(line);
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child !== child) return;
    this.#child = null;
    // Workers outlive a killed master and keep its listening sockets: a new nginx could bind none of them.
    for (const pid of this.#workers) {
      try {
        process.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    this.#workers.clear();
    if (this.#stopping) return;
    const wait = this.#backoffMs;
    this.#backoffMs = Math.min(30_000, this.#backoffMs * 2);
    this.#logger.error(`nginx for streams exited (${signal ?? "status " + code}); starting it again in ${wait / 1000} s`, { last: this.recentLog(3) });
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      this.start().then(() => { this.#backoffMs = 1000; }, (err) => this.#logger.error(messageOf(err)));
    }, wait);
  }
}
