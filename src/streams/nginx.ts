/**
 * The gateway's own nginx for TCP streams, as a daemon that outlives the
 * gateway: started with its prefix as working directory (which marks its
 * master and workers as the gateway's), found again at the next start from
 * its pid file and adopted, so that relayed connections survive a restart
 * or a crash of the gateway. Its log is a file the gateway reads (nginx
 * keeps its whole old configuration when a reload fails, and says so only
 * there); it is started again with backoff if it dies, and stopped only on
 * purpose (`conductor-server --stop-streams`).
 *
 * @module
 */
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import { ConductorError, isErrno, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { readProcFile } from "../lib/proc.ts";
import { everySecond } from "../lib/sweeper.ts";

/** How long nginx may take to start, reload or stop before the gateway gives up, in ms. */
const OUTCOME_TIMEOUT_MS = 30_000;
/** Lines of nginx's log kept for error reports. */
const LOG_LINES = 200;
/** The log is emptied when it grows past this many bytes (nginx appends, so it goes on at the start). */
const LOG_MAX_BYTES = 4 * 1024 * 1024;

/** Where and how to run nginx. */
export interface NginxCommand {
  program: string;
  /** nginx's prefix (-p), also its working directory. */
  prefix: string;
  /** The main configuration (-c). */
  config: string;
  /** The pid file the configuration names. */
  pidFile: string;
  /** The error log the configuration names. */
  errorLog: string;
}

/** A line of nginx's log that says it failed. */
const FAILURE_RE = /\[(emerg|alert)\]/;
/** A line about one client's connection: attackers can cause as many as they like, so they are not warnings. */
const PER_CONNECTION_RE = /\*\d+ /;

/** An nginx the gateway runs, or found running and adopted. */
export class OwnNginx {
  readonly #command: NginxCommand;
  readonly #logger: Logger;
  #pid: number | null = null;
  #log: string[] = [];
  #logOffset = 0;
  #partial = "";
  #watchers = new Set<(line: string) => void>();
  #stopWatch: (() => void) | null = null;
  #restarting = false;
  #backoffMs = 1000;
  #nextStartAt = 0;
  /** Workers that said they are shutting down (they stopped accepting; they may serve open connections for long). */
  #quitting = new Set<number>();
  /** True when this process started the running nginx (rather than adopting it). */
  #startedHere = false;

  constructor(command: NginxCommand, logger: Logger) {
    this.#command = command;
    this.#logger = logger;
  }

  /** The master's pid while one runs. */
  get pid(): number | null {
    return this.#pid;
  }

  /**
   * Adopts the nginx of the pid file if it is this gateway's (its command
   * line names our program, prefix and configuration, and it runs as our
   * user in our prefix) and watches it; false when there is none.
   */
  async adopt(): Promise<boolean> {
    this.#logOffset = await fileSize(this.#command.errorLog);
    const pid = await this.#pidFromFile();
    if (pid === null || !await this.#isOurMaster(pid)) return false;
    this.#pid = pid;
    this.#startedHere = false;
    this.#watch();
    this.#logger.info("nginx for streams adopted: the connections it relays go on", { pid, config: this.#command.config });
    return true;
  }

  /**
   * Checks the configuration files with `nginx -t`; returns nginx's
   * complaint, or null when they are fine. Throws when nginx cannot run.
   */
  async test(): Promise<string | null> {
    const { code, stderr } = await this.#run(["-t", "-q"]);
    return code === 0 ? null : (stderr.trim() || `${this.#command.program} -t exited with status ${code}`);
  }

  /** Starts nginx and waits until it has written its pid file; throws with nginx's own words if it cannot. */
  async start(): Promise<void> {
    const { code, stderr } = await this.#run([]);
    if (code !== 0) {
      const words = stderr.split("\n").map((l) => l.replace(/^nginx: \[(emerg|alert)\] /, "")).filter((l) => l !== "").slice(-3).join(" | ");
      throw new ConductorError("CONDUCTOR_ERR_NGINX", `Cannot start nginx for the streams: ${words || `${this.#command.program} exited with status ${code}`}`);
    }
    // The daemon writes its pid file just after the command returns.
    const deadline = Date.now() + OUTCOME_TIMEOUT_MS;
    for (;;) {
      const pid = await this.#pidFromFile();
      if (pid !== null && await this.#isOurMaster(pid)) {
        this.#pid = pid;
        this.#startedHere = true;
        break;
      }
      if (Date.now() > deadline) throw new ConductorError("CONDUCTOR_ERR_NGINX", `Cannot start nginx for the streams: it wrote no pid file at ${this.#command.pidFile} within ${OUTCOME_TIMEOUT_MS / 1000} s`);
      await pause(20);
    }
    this.#watch();
    this.#logger.info("nginx for streams started", { pid: this.#pid, config: this.#command.config });
  }

  /**
   * Makes nginx read its configuration again (SIGHUP) and waits for the
   * outcome in its log: new workers started, or an error (nginx then keeps
   * running its previous configuration), and until the old workers stopped
   * accepting. Throws with nginx's words.
   */
  async reload(): Promise<void> {
    const pid = this.#pid;
    if (pid === null) return this.start();
    await this.#readLog();
    // Workers of earlier reloads that still serve connections stopped accepting long ago.
    const old = (await this.#workersOf(pid)).filter((w) => !this.#quitting.has(w));
    const reconfigured = this.#outcome((line) => /: reconfiguring$/.test(line));
    process.kill(pid, "SIGHUP");
    const result = await reconfigured;
    if (!result.ok) throw new ConductorError("CONDUCTOR_ERR_NGINX", `Cannot reload nginx for the streams: it did not take the new configuration: ${result.error}`);
    // Until the old workers let go of the listening sockets, they may accept a connection for the old configuration.
    await this.#until(() => old.every((w) => this.#quitting.has(w) || !alive(w)), "the old workers to stop accepting");
  }

  /** The last lines of nginx's log, for error reports. */
  recentLog(lines = 20): string[] {
    return this.#log.slice(-lines);
  }

  /** True when this process started the running nginx, rather than adopting one that relayed before it. */
  get startedHere(): boolean {
    return this.#pid !== null && this.#startedHere;
  }

  /** Stops watching nginx; it goes on relaying (the next start of the gateway adopts it). Safe to call twice. */
  detach(): void {
    this.#stopWatch?.();
    this.#stopWatch = null;
  }

  /**
   * Ends nginx (the connections it relays end) and every process of ours it
   * left, old workers included; true when its master (ours, as its pid file
   * names it) was running.
   */
  async stop(): Promise<boolean> {
    this.detach();
    const pid = this.#pid ?? await this.#pidFromFile();
    this.#pid = null;
    const running = pid !== null && await this.#isOurMaster(pid);
    if (running) {
      signal(pid, "SIGTERM");
      const deadline = Date.now() + 10_000;
      while (alive(pid) && Date.now() < deadline) await pause(20);
    }
    await this.killStrays();
    return running;
  }

  /** Runs nginx with `args` in its prefix; resolves with its status and what it wrote to stderr. */
  #run(args: string[]): Promise<{ code: number; stderr: string }> {
    const { program, prefix, config, errorLog } = this.#command;
    return new Promise((resolve, reject) => {
      const child = spawn(program, [...args, "-p", prefix, "-c", config, "-e", errorLog], { cwd: prefix, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => { if (stderr.length < 8192) stderr += chunk; });
      child.on("error", (e) => reject(new ConductorError("CONDUCTOR_ERR_NGINX",
        `Cannot run nginx for the streams, ${program}: ${messageOf(e)}; install nginx and its stream module (Debian: nginx-light and libnginx-mod-stream), or give conductor-server --nginx`)));
      child.on("close", (code) => resolve({ code: code ?? 1, stderr }));
    });
  }

  /** Once a second: reads the new lines of the log, and starts nginx again (with backoff) if it died. */
  #watch(): void {
    this.#stopWatch ??= everySecond((now) => {
      void this.#readLog();
      if (this.#pid !== null && alive(this.#pid)) return;
      if (this.#restarting || now < this.#nextStartAt) return;
      if (this.#pid !== null) {
        this.#logger.error(`nginx for streams exited; starting it again in ${this.#backoffMs / 1000} s`, { pid: this.#pid, last: this.recentLog(3) });
        this.#pid = null;
        this.#nextStartAt = now + this.#backoffMs;
        this.#backoffMs = Math.min(30_000, this.#backoffMs * 2);
        return;
      }
      this.#restarting = true;
      // Workers outlive a killed master and keep its listening sockets: a new nginx could bind none of them.
      this.killStrays().then(() => this.start()).then(() => { this.#backoffMs = 1000; }, (err) => {
        this.#logger.error(messageOf(err));
        this.#nextStartAt = Date.now() + this.#backoffMs;
        this.#backoffMs = Math.min(30_000, this.#backoffMs * 2);
      }).finally(() => { this.#restarting = false; });
    });
  }

  /** Reads what nginx appended to its log since the last read. */
  async #readLog(): Promise<void> {
    const path = this.#command.errorLog;
    let handle;
    try {
      handle = await fs.open(path, "r");
    } catch {
      return;
    }
    try {
      const { size } = await handle.stat();
      if (size < this.#logOffset) this.#logOffset = 0;
      if (size === this.#logOffset) return;
      const length = Math.min(size - this.#logOffset, 1024 * 1024);
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, this.#logOffset);
      this.#logOffset += bytesRead;
      const lines = (this.#partial + buffer.toString("utf8", 0, bytesRead)).split("\n");
      this.#partial = lines.pop()!;
      for (const line of lines) this.#onLine(line);
      if (this.#logOffset > LOG_MAX_BYTES && this.#watchers.size === 0 && this.#partial === "") {
        await handle.truncate(0);
        this.#logOffset = 0;
      }
    } finally {
      await handle.close();
    }
  }

  /** Waits, line by line of nginx's log, until `done` holds; throws after the time limit, naming `what`. */
  async #until(done: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + OUTCOME_TIMEOUT_MS;
    while (!done()) {
      if (Date.now() > deadline) throw new ConductorError("CONDUCTOR_ERR_NGINX", `Cannot reload nginx for the streams: it did not say within ${OUTCOME_TIMEOUT_MS / 1000} s that it had reloaded (waiting for ${what}); see its log, ${this.#command.errorLog}`);
      await pause(20);
      await this.#readLog();
    }
  }

  /**
   * Resolves with the outcome of a reload: the first failure line, or the
   * first "start worker process" line, after the line `marker` finds.
   */
  async #outcome(marker: (line: string) => boolean): Promise<{ ok: true } | { ok: false; error: string }> {
    let on = false;
    let result: { ok: true } | { ok: false; error: string } | null = null;
    const watch = (line: string): void => {
      if (result !== null) return;
      if (!on) {
        // Lines before the marker are another operation's.
        on = marker(line);
        return;
      }
      if (FAILURE_RE.test(line)) result = { ok: false, error: line.replace(/^.*?\[(emerg|alert)\] (?:[0-9]+#[0-9]+: )?/, "") };
      else if (/start worker process \d+/.test(line)) result = { ok: true };
    };
    this.#watchers.add(watch);
    try {
      await this.#until(() => result !== null, "its new workers").catch(() => {
        result = { ok: false, error: `no answer within ${OUTCOME_TIMEOUT_MS / 1000} s; its last words: ${this.recentLog(3).join(" | ")}` };
      });
      return result!;
    } finally {
      this.#watchers.delete(watch);
    }
  }

  #onLine(line: string): void {
    const quit = /(\d+)#\d+: (?:gracefully shutting down|exiting)$/.exec(line);
    if (quit !== null) this.#quitting.add(Number(quit[1]));
    const exited = /worker process (\d+) exited/.exec(line);
    if (exited !== null) this.#quitting.delete(Number(exited[1]));
    this.#log.push(line);
    if (this.#log.length > LOG_LINES) this.#log.splice(0, this.#log.length - LOG_LINES);
    if (FAILURE_RE.test(line) && !PER_CONNECTION_RE.test(line)) this.#logger.warn("nginx", { line });
    else this.#logger.debug("nginx", { line });
    for (const watch of [...this.#watchers]) watch(line);
  }

  async #pidFromFile(): Promise<number | null> {
    const text = await fs.readFile(this.#command.pidFile, "utf8").catch(() => "");
    const pid = Number(text.trim());
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  }

  /** True when `pid` runs nginx's master with our prefix and configuration, as our user in our prefix. */
  async #isOurMaster(pid: number): Promise<boolean> {
    const { prefix, config } = this.#command;
    const title = (await readProcFile(`/proc/${pid}/cmdline`).catch(() => "")).replaceAll("\0", " ");
    // Whatever nginx program started it (--nginx may have changed since): its prefix, configuration and directory make it ours.
    return title.startsWith("nginx: master process ") && title.includes(` -p ${prefix} -c ${config} `) && await this.#isOurs(pid);
  }

  /** True when `pid` is an nginx process of this gateway's user whose working directory is our prefix. */
  async #isOurs(pid: number): Promise<boolean> {
    try {
      const [comm, cwd, st] = await Promise.all([fs.readFile(`/proc/${pid}/comm`, "utf8"), fs.readlink(`/proc/${pid}/cwd`), fs.stat(`/proc/${pid}`)]);
      const uid = process.geteuid?.() ?? 0;
      return comm.trim() === "nginx" && cwd === this.#command.prefix && (uid === 0 || st.uid === uid);
    } catch {
      return false;
    }
  }

  /** The worker processes of master `pid`. */
  async #workersOf(pid: number): Promise<number[]> {
    const workers: number[] = [];
    for (const p of await nginxPids()) {
      const stat = await fs.readFile(`/proc/${p}/stat`, "utf8").catch(() => "");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) workers.push(p);
    }
    return workers;
  }

  /** Kills (SIGKILL) every nginx process of ours: what a killed master leaves, old workers included. */
  async killStrays(): Promise<void> {
    const ours: number[] = [];
    for (const pid of await nginxPids()) if (await this.#isOurs(pid)) ours.push(pid);
    this.#quitting.clear();
    if (ours.length === 0) return;
    for (const pid of ours) signal(pid, "SIGKILL");
    this.#logger.info("stopped nginx processes of the streams left from before", { pids: ours });
    const deadline = Date.now() + 10_000;
    while (ours.some(alive) && Date.now() < deadline) await pause(20);
  }
}

/**
 * The version of the nginx at `program`, as [major, minor, patch], from
 * `nginx -v`; null when it cannot tell.
 */
export function nginxVersion(program: string): Promise<[number, number, number] | null> {
  return new Promise((resolve) => {
    const child = spawn(program, ["-v"], { stdio: ["ignore", "ignore", "pipe"] });
    let text = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => { text += chunk; });
    child.on("error", () => resolve(null));
    child.on("close", () => {
      const m = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(text);
      resolve(m === null ? null : [Number(m[1]), Number(m[2]), Number(m[3])]);
    });
  });
}

/** Pids of processes whose executable name is nginx (their title may say otherwise). */
async function nginxPids(): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await fs.readdir("/proc")) {
    if (!/^[0-9]+$/.test(name)) continue;
    const comm = await fs.readFile(`/proc/${name}/comm`, "utf8").catch(() => "");
    if (comm.trim() === "nginx") pids.push(Number(name));
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, "EPERM");
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch { /* gone */ }
}

async function fileSize(path: string): Promise<number> {
  return (await fs.stat(path).catch(() => ({ size: 0 }))).size;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
