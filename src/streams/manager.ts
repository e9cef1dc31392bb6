/**
 * The gateway's TCP streams: which port relays to which backend, for whom.
 * Every change is one transaction, one at a time: the port is test-bound
 * first, the block files are written atomically, `nginx -t` checks the whole
 * configuration, nginx reloads, and the gateway confirms by connecting (or
 * seeing the refusal). On any failure the previous files come back byte for
 * byte, nginx reloads again, and the caller gets nginx's own words.
 *
 * Ports are sticky: `(owner, name) → port` is remembered, and the same
 * service gets its port again while it is free. The state is one JSON file,
 * `<state dir>/streams.json`, written after each change.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { ConductorError, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { lookupAccount, lookupGroupName } from "../lib/users.ts";
import { inspectRouteSocket, socketAnswers } from "../lib/socket_check.ts";
import { PROBE_EVERY_MS, SILENT_GRACE_MS } from "../control/waiting.ts";
import { everySecond } from "../lib/sweeper.ts";
import { readJson, writeFileAtomic, writeJsonAtomic } from "../state/json_file.ts";
import { OwnNginx } from "./nginx.ts";
import { bindProblem, settlePorts } from "./ports.ts";
import { blockFileName, renderBlock, renderMainConfig, type StreamBlock } from "./render.ts";
import { BUILTIN_MODULE, type StreamSettings } from "./settings.ts";
import { checkBackend, checkPort, checkStreamName, rangeSize } from "./validate.ts";

/** The owner of streams an admin made through the admin API. */
export const ADMIN_OWNER = "admin";

/** A stream as the gateway keeps it. */
export interface StreamRecord extends StreamBlock {
  /** A user's stream: the client directory holding the forwarded socket. */
  directory?: string;
  /** A user's stream: the user's uid (the socket's owner). */
  uid?: number;
  /** A user's stream: hex blake2b-512 of its run's token. */
  auth?: string;
  /** ISO time it was published. */
  created: string;
}

/** What a caller asks to publish. */
export interface StreamRequest {
  owner: string;
  name: string;
  backend: string;
  uid?: number;
  directory?: string;
  auth?: string;
  /** A port asked for; else the sticky one, else a free one. */
  port?: number;
}

/** The state file. */
interface StreamsFile {
  version: 1;
  streams: StreamRecord[];
  /** `owner/name` → the port that service had last, oldest first. */
  sticky: Record<string, number>;
}

/** Where the manager keeps its files. */
export interface StreamPaths {
  runtimeDir: string;
  stateDir: string;
  socketsDir: string;
}


/** The streams of one gateway, and the nginx that relays them. */
export class StreamManager {
  readonly settings: StreamSettings;
  readonly #logger: Logger;
  readonly #nginx: OwnNginx;
  readonly #streamDir: string;
  readonly #stateFile: string;
  readonly #socketsDir: string;
  #streams = new Map<number, StreamRecord>();
  #sticky = new Map<string, number>();
  #queue: Promise<unknown> = Promise.resolve();
  /** Streams kept across a restart whose client has not registered again: port → when their socket stopped answering (0 while it answers). */
  #waiting = new Map<number, number>();
  #stopProbes: () => void;
  #lastProbe = Date.now();

  private constructor(settings: StreamSettings, paths: StreamPaths, logger: Logger) {
    this.settings = settings;
    this.#logger = logger;
    const prefix = join(paths.runtimeDir, "nginx");
    this.#streamDir = settings.dir ?? join(prefix, "stream.d");
    this.#stateFile = join(paths.stateDir, "streams.json");
    this.#socketsDir = paths.socketsDir;
    this.#nginx = new OwnNginx({ program: settings.nginx, prefix, config: join(prefix, "nginx.conf") }, logger);
    this.#stopProbes = everySecond((now) => {
      if (now - this.#lastProbe < PROBE_EVERY_MS || this.#waiting.size === 0) return;
      this.#lastProbe = now;
      void this.#serial(() => this.#probeWaiting());
    });
  }

  /**
   * Prepares nginx's directory and configuration, takes over the stored
   * streams (a user's only while its socket answers; the client then
   * registers again), removes block files nobody owns, and starts nginx when
   * there is a stream to relay.
   */
  static async open(settings: StreamSettings, paths: StreamPaths, logger: Logger): Promise<StreamManager> {
    const manager = new StreamManager(settings, paths, logger);
    try {
      await manager.#prepare(paths.runtimeDir);
      await manager.#adopt();
    } catch (err) {
      await manager.close();
      throw err;
    }
    return manager;
  }

  /** The published streams. */
  list(): StreamRecord[] {
    return [...this.#streams.values()].sort((a, b) => a.port - b.port);
  }

  /** The stream on `port`, if any. */
  get(port: number): StreamRecord | undefined {
    return this.#streams.get(port);
  }

  /** Client directories of users' streams (kept when the sockets directory is swept). */
  directories(): Set<string> {
    return new Set(this.list().flatMap((s) => s.directory === undefined ? [] : [s.directory]));
  }

  /** The address clients are told for `port`. */
  address(port: number): string {
    return `${this.settings.host}:${port}`;
  }

  /**
   * Publishes a stream (or moves an owner's stream of that name to a new
   * backend, keeping its port) and returns it, with the stream it replaced;
   * throws a `ConductorError` that says why not: the request, the limits,
   * or nginx's own words.
   */
  publish(request: StreamRequest): Promise<{ stream: StreamRecord; replaced?: StreamRecord }> {
    return this.#serial(() => this.#publish(request));
  }

  /**
   * Removes the stream on `port`, if `match` (default: any) agrees it is the
   * one meant; returns it, or undefined when there was none.
   */
  remove(port: number, match: (stream: StreamRecord) => boolean = () => true): Promise<StreamRecord | undefined> {
    return this.#serial(async () => {
      const stream = this.#streams.get(port);
      if (stream === undefined || !match(stream)) return undefined;
      await this.#drop(stream);
      return stream;
    });
  }

  /** Takes `stream` out of nginx and of the stored state; `reason` is logged. */
  async #drop(stream: StreamRecord, reason?: string): Promise<void> {
    const next = new Map(this.#streams);
    next.delete(stream.port);
    await this.#commit(next, [], [stream.port]);
    this.#waiting.delete(stream.port);
    await this.#save();
    this.#logger.info("stream removed", { port: stream.port, owner: stream.owner, name: stream.name, ...(reason === undefined ? {} : { reason }) });
  }

  /** The first port a new service would get, or null when every port is taken. */
  freePort(): Promise<number | null> {
    return this.#serial(() => this.#pickPort(null));
  }

  /** Stops nginx (its relays end) and the probes; the streams stay stored for the next start. */
  async close(): Promise<void> {
    this.#stopProbes();
    await this.#queue.catch(() => {});
    await this.#nginx.stop();
  }

  async #publish(request: StreamRequest): Promise<{ stream: StreamRecord; replaced?: StreamRecord }> {
    const { owner, name } = request;
    checkStreamName(name);
    const backend = checkBackend(request.backend, this.#socketsDir);
    const mine = this.list().find((s) => s.owner === owner && s.name === name);
    if (mine !== undefined && owner !== ADMIN_OWNER && mine.auth !== request.auth && mine.backend.startsWith("unix:") &&
        await socketAnswers(mine.backend.slice(5), 2000)) {
      throw refused(`Cannot publish stream ${name}: user ${owner} already has a live stream of that name on port ${mine.port} from another conductor run; stop that one, or choose another --name`);
    }
    if (mine === undefined && owner !== ADMIN_OWNER && this.list().filter((s) => s.owner === owner).length >= this.settings.perUser) {
      throw refused(`Cannot publish stream ${name}: user ${owner} already holds ${this.settings.perUser} streams, the limit of this gateway (--streams-per-user); stop one first (conductor list)`);
    }
    const port = request.port !== undefined ? await this.#claimPort(request.port, mine)
      : mine?.port ?? await this.#pickPort(`${owner}/${name}`);
    if (port === null) {
      const { first, last } = this.settings.range;
      throw refused(`Cannot publish stream ${name}: all ${rangeSize(this.settings.range)} ports of this gateway (${first}-${last}) are taken; try again later, or ask its admin for a larger --port-range`);
    }
    const stream: StreamRecord = {
      port, backend, owner, name, created: new Date().toISOString(),
      ...(request.uid === undefined ? {} : { uid: request.uid }),
      ...(request.directory === undefined ? {} : { directory: request.directory }),
      ...(request.auth === undefined ? {} : { auth: request.auth }),
    };
    const next = new Map(this.#streams);
    if (mine !== undefined) next.delete(mine.port);
    next.set(port, stream);
    const moved = mine !== undefined && mine.port !== port ? [mine.port] : [];
    await this.#commit(next, port === mine?.port ? [] : [port], moved);
    this.#waiting.delete(port);
    this.#remember(`${owner}/${name}`, port);
    await this.#save();
    this.#logger.info("stream published", { port, owner, name, backend, replaced: mine !== undefined });
    return { stream, replaced: mine };
  }

  /** Checks a port asked for: in the range, not another service's, bindable. */
  async #claimPort(requested: number, mine: StreamRecord | undefined): Promise<number> {
    const port = checkPort(requested, this.settings.range);
    if (port === mine?.port) return port;
    const holder = this.#streams.get(port);
    const rule = `ports ${this.settings.range.first}-${this.settings.range.last} go to whoever asks first, ${this.settings.perUser} per user`;
    if (holder !== undefined) {
      throw refused(`Cannot publish on port ${port}: it is held by ${holder.owner === mine?.owner ? `your stream ${holder.name}` : "another service"}; ${rule}; leave out --port to get a free one`);
    }
    const problem = await bindProblem(port);
    if (problem !== null) throw refused(`Cannot publish on port ${port}: ${problem}; ${rule}; leave out --port to get a free one`);
    return port;
  }

  /**
   * A free port that can be bound: `sticky`'s remembered one first, then one
   * nobody remembers, then any; null when none is left.
   */
  async #pickPort(sticky: string | null): Promise<number | null> {
    const { first, last } = this.settings.range;
    const remembered = new Set(this.#sticky.values());
    const own = sticky === null ? undefined : this.#sticky.get(sticky);
    const all = Array.from({ length: last - first + 1 }, (_, i) => first + i).filter((p) => !this.#streams.has(p));
    const order = [...(own !== undefined && all.includes(own) ? [own] : []), ...all.filter((p) => !remembered.has(p)), ...all.filter((p) => remembered.has(p) && p !== own)];
    for (const port of order) {
      const problem = await bindProblem(port);
      if (problem === null) return port;
      this.#logger.debug("stream port skipped", { port, reason: problem });
    }
    return null;
  }

  /**
   * Makes `next` the published streams: writes their files, has nginx check
   * and load them, and confirms that `opened` answer and `closed` refuse.
   * On failure, restores the files as they were and reloads.
   */
  async #commit(next: Map<number, StreamRecord>, opened: number[], closed: number[]): Promise<void> {
    const before = await this.#readBlocks();
    const wanted = new Map([...next.values()].map((s) => [blockFileName(this.settings, s.port), renderBlock(s, this.settings)]));
    let reloaded = false;
    try {
      await this.#writeBlocks(before, wanted);
      const complaint = await this.#nginx.test();
      if (complaint !== null) throw nginxError(`nginx -t refused the configuration: ${complaint}`);
      if (next.size > 0 || this.#nginx.running) {
        reloaded = true;
        await this.#nginx.reload();
      }
      const silent = await settlePorts(opened, true);
      if (silent.length > 0) throw nginxError(`port ${silent.join(", ")} did not answer after nginx reloaded; nginx said: ${this.#nginx.recentLog(3).join(" | ")}`);
      const open = await settlePorts(closed, false);
      if (open.length > 0) throw nginxError(`port ${open.join(", ")} still answers after nginx reloaded`);
    } catch (err) {
      await this.#rollBack(before, wanted, reloaded);
      throw err;
    }
    this.#streams = next;
  }

  /** Puts the block files back as `before`, byte for byte, and has nginx serve them again. */
  async #rollBack(before: Map<string, Buffer>, written: Map<string, string>, reloaded: boolean): Promise<void> {
    try {
      for (const file of written.keys()) if (!before.has(file)) await fs.rm(join(this.#streamDir, file), { force: true });
      for (const [file, bytes] of before) await writeFileAtomic(join(this.#streamDir, file), bytes, 0o644);
      if (!reloaded) return;
      await this.#nginx.reload();
      const silent = await settlePorts(this.#streams.keys(), true);
      if (silent.length > 0) this.#logger.error("after a rollback, streams do not answer", { ports: silent });
      else this.#logger.info("stream change rolled back; the previous streams answer", { streams: this.#streams.size });
    } catch (err) {
      this.#logger.error(`Cannot roll back the stream files in ${this.#streamDir}: ${messageOf(err)}; check them and nginx's log`, { error: err });
    }
  }

  /** The gateway's block files (with its prefix) and their bytes. */
  async #readBlocks(): Promise<Map<string, Buffer>> {
    const blocks = new Map<string, Buffer>();
    for (const file of await fs.readdir(this.#streamDir)) {
      if (file.startsWith(this.settings.prefix) && file.endsWith(".conf")) blocks.set(file, await fs.readFile(join(this.#streamDir, file)));
    }
    return blocks;
  }

  /** Writes the files of `wanted` that differ from `current` and removes the gateway's others. */
  async #writeBlocks(current: Map<string, Buffer>, wanted: Map<string, string>): Promise<void> {
    for (const [file, text] of wanted) {
      if (current.get(file)?.toString("utf8") !== text) await writeFileAtomic(join(this.#streamDir, file), text, 0o644);
    }
    for (const file of current.keys()) if (!wanted.has(file)) await fs.rm(join(this.#streamDir, file), { force: true });
  }

  /** Creates nginx's prefix and stream directory and writes its main configuration. */
  async #prepare(runtimeDir: string): Promise<void> {
    const prefix = join(runtimeDir, "nginx");
    try {
      await fs.mkdir(prefix, { recursive: true, mode: 0o700 });
      for (const file of [this.settings.nginx, this.settings.module].filter((f) => f !== BUILTIN_MODULE)) {
        await fs.access(file).catch(() => this.#logger.warn(`TCP streams cannot work: ${file} is missing; install nginx and its stream module (Debian: nginx-light, libnginx-mod-stream) or set --nginx and --stream-module`));
      }
      await fs.mkdir(this.#streamDir, { recursive: true, mode: 0o700 });
      const config = renderMainConfig(this.settings, { prefix, streamDir: this.#streamDir }, await rootWorkers());
      await writeFileAtomic(join(prefix, "nginx.conf"), config, 0o600);
    } catch (err) {
      throw new ConductorError("CONDUCTOR_ERR_RUNTIME_DIR", `Cannot prepare nginx's files in ${prefix}: ${messageOf(err)}`, { cause: err });
    }
  }

  /** Takes over the stored streams that can still serve, and starts nginx for them. */
  async #adopt(): Promise<void> {
    const stored = await readJson(this.#stateFile).catch((err) => {
      this.#logger.error(messageOf(err), { path: this.#stateFile });
      return undefined;
    }) as Partial<StreamsFile> | undefined;
    for (const [key, port] of Object.entries(stored?.sticky ?? {})) if (typeof port === "number") this.#sticky.set(key, port);
    const kept = new Map<number, StreamRecord>();
    for (const record of Array.isArray(stored?.streams) ? stored.streams : []) {
      const why = await this.#unfit(record, kept);
      if (why !== null) {
        this.#logger.info("stored stream dropped at start", { port: record.port, owner: record.owner, name: record.name, reason: why });
        continue;
      }
      kept.set(record.port, record);
      if (record.owner !== ADMIN_OWNER) this.#waiting.set(record.port, 0);
    }
    const blocks = await this.#readBlocks();
    const wanted = new Map([...kept.values()].map((s) => [blockFileName(this.settings, s.port), renderBlock(s, this.settings)]));
    for (const file of blocks.keys()) if (!wanted.has(file)) this.#logger.info("removing a stream file no stream owns", { file, dir: this.#streamDir });
    await this.#writeBlocks(blocks, wanted);
    if (kept.size > 0) {
      try {
        const complaint = await this.#nginx.test();
        if (complaint !== null) throw nginxError(`nginx -t refused them: ${complaint}`);
        await this.#nginx.start();
        const silent = await settlePorts(kept.keys(), true);
        if (silent.length > 0) this.#logger.error("stored streams do not answer after nginx started", { ports: silent });
        this.#logger.info("streams kept across the restart", { count: kept.size });
      } catch (err) {
        // Their clients register again and get their ports back (sticky) once nginx works.
        this.#logger.error(`Cannot serve the stored streams: ${messageOf(err)}; they are dropped`, { ports: [...kept.keys()] });
        await this.#writeBlocks(await this.#readBlocks(), new Map());
        kept.clear();
        this.#waiting.clear();
      }
    }
    this.#streams = kept;
    await this.#save();
  }

  /** Why a stored stream cannot be published again at start, or null when it can. */
  async #unfit(record: StreamRecord, kept: Map<number, StreamRecord>): Promise<string | null> {
    try {
      checkPort(record.port, this.settings.range);
      checkStreamName(record.name);
      checkBackend(record.backend, this.#socketsDir);
      if (kept.has(record.port)) return "its port is another stream's";
      if (record.owner !== ADMIN_OWNER) {
        if (record.directory === undefined || record.backend !== `unix:${record.directory}/socket`) return "its socket is not in its client directory";
        const facts = await inspectRouteSocket(record.backend.slice(5));
        if (facts.uid !== record.uid) return "its socket changed owner";
        if ((await lookupAccount(facts.uid)).name.toLowerCase() !== record.owner) return "its owner has another name now";
        if (!await socketAnswers(record.backend.slice(5), 2000)) return "its socket does not answer";
      }
      return await bindProblem(record.port);
    } catch (err) {
      return messageOf(err);
    }
  }

  /** Drops the streams kept across a restart whose socket stopped answering and whose client did not come back. */
  async #probeWaiting(): Promise<void> {
    for (const [port, since] of [...this.#waiting]) {
      const stream = this.#streams.get(port);
      if (stream === undefined) {
        this.#waiting.delete(port);
        continue;
      }
      if (await socketAnswers(stream.backend.slice(5), 2000)) this.#waiting.set(port, 0);
      else if (since === 0) this.#waiting.set(port, Date.now());
      else if (Date.now() - since > SILENT_GRACE_MS) {
        await this.#drop(stream, "its socket stopped answering and the client did not come back")
          .catch((err) => this.#logger.error(`Cannot remove stream ${port}: ${messageOf(err)}`, { port }));
      }
    }
  }

  /** Remembers `key`'s port, keeping the most recent entries (four per port of the range). */
  #remember(key: string, port: number): void {
    this.#sticky.delete(key);
    this.#sticky.set(key, port);
    const most = 4 * rangeSize(this.settings.range);
    for (const old of this.#sticky.keys()) {
      if (this.#sticky.size <= most) break;
      this.#sticky.delete(old);
    }
  }

  async #save(): Promise<void> {
    const file: StreamsFile = { version: 1, streams: this.list(), sticky: Object.fromEntries(this.#sticky) };
    await writeJsonAtomic(this.#stateFile, file).catch((err) => this.#logger.error(messageOf(err), { path: this.#stateFile }));
  }

  /** Runs `fn` after every change queued before it. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }
}

/** The user and group of nginx's workers when the gateway runs as root (nginx would pick nobody), else undefined. */
async function rootWorkers(): Promise<{ name: string; group: string } | undefined> {
  if (process.geteuid?.() !== 0) return undefined;
  const account = await lookupAccount(0);
  return { name: account.name, group: await lookupGroupName(process.getegid?.() ?? 0) };
}

function refused(message: string): ConductorError {
  return new ConductorError("CONDUCTOR_ERR_STREAM_REFUSED", message);
}

function nginxError(message: string): ConductorError {
  return new ConductorError("CONDUCTOR_ERR_NGINX", message);
}
