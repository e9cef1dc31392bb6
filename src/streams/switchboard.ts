/**
 * The gateway's stream ports, as nginx serves them: configured once, at
 * start, with one block per port of the range (a port another program holds
 * then is left out, and tried again when someone asks for it), each relaying
 * to the port's link in `<runtime>/streams/`. Publishing a stream points the
 * link at a socket; removing it unlinks it; nginx is not reloaded for either.
 * Only an admin's stream to a `host:port` backend rewrites a block, through
 * the transaction of transaction.ts.
 *
 * nginx outlives the gateway: the next start adopts it (its relays go on).
 * `conductor-server --stop-streams` ends it on purpose ({@link stopStreams}).
 * In site mode (`--nginx-mode site`) the gateway runs no nginx: it writes the
 * same blocks into the site's stream directory, which the site's nginx
 * includes (reloaded once by the admin, at setup), and swaps links as in
 * its own mode.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { ConductorError, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { openFilesLimit } from "../lib/open_files.ts";
import { lookupAccount, lookupGroupName } from "../lib/users.ts";
import { writeFileAtomic } from "../state/json_file.ts";
import { checkOwnDirectory } from "../state/private_dir.ts";
import { PortLinks } from "./links.ts";
import { nginxVersion, OwnNginx } from "./nginx.ts";
import { bindProblem, portAnswers } from "./ports.ts";
import { blockFileName, renderMainConfig, renderPortBlock, renderZones, sizeNginx, zonesFileName, type NginxFeatures, type NginxPaths, type PortTarget } from "./render.ts";
import { BUILTIN_MODULE, type StreamSettings } from "./settings.ts";
import { applyBlocks, writeBlocks } from "./transaction.ts";
import { rangeSize } from "./validate.ts";

/** An admin's stream to a `host:port` backend: the address its block relays to, and a note for the file. */
export interface AddressTarget {
  address: string;
  note: string;
}

/** The first nginx with `proxy_half_close`. */
const HALF_CLOSE_SINCE: [number, number, number] = [1, 21, 4];

/** The files of the gateway's nginx under the runtime directory. */
export function nginxPaths(settings: Pick<StreamSettings, "dir">, runtimeDir: string): NginxPaths & { config: string } {
  const prefix = join(runtimeDir, "nginx");
  return {
    prefix,
    streamDir: settings.dir ?? join(prefix, "stream.d"),
    config: join(prefix, "nginx.conf"),
    pidFile: join(prefix, "nginx.pid"),
    errorLog: join(prefix, "error.log"),
  };
}

/** The stream ports of one gateway. */
export class Switchboard {
  readonly settings: StreamSettings;
  readonly links: PortLinks;
  readonly #logger: Logger;
  readonly #paths: NginxPaths & { config: string };
  /** The gateway's own nginx; null in site mode. */
  readonly #nginx: OwnNginx | null;
  #features: NginxFeatures = { halfClose: true };
  /** Ports nginx listens on. */
  #listening = new Set<number>();
  /** Ports left out because they could not be bound, with the reason. */
  #held = new Map<number, string>();
  /** Ports whose block relays to an address (admins' `host:port` streams). */
  #addresses = new Map<number, AddressTarget>();
  /** Why streams cannot be served now, or null. */
  #problem: string | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(settings: StreamSettings, runtimeDir: string, logger: Logger) {
    this.settings = settings;
    this.#logger = logger;
    this.#paths = nginxPaths(settings, runtimeDir);
    this.links = new PortLinks(join(runtimeDir, "streams"));
    this.#nginx = settings.mode === "own" ? new OwnNginx({ program: settings.nginx, ...this.#paths }, logger) : null;
  }

  /**
   * Prepares the directories (refusing ones others could write to), renders
   * a block for each port of the range (`addresses` for admins' `host:port`
   * streams), and adopts the running nginx of a previous start or starts
   * one. An nginx that cannot run is reported by {@link problem}, and tried
   * again by {@link claim}; the gateway serves web apps meanwhile.
   */
  static async open(settings: StreamSettings, runtimeDir: string, addresses: Map<number, AddressTarget>, logger: Logger): Promise<Switchboard> {
    const board = new Switchboard(settings, runtimeDir, logger);
    board.#addresses = new Map(addresses);
    await board.#prepare();
    await board.#serial(() => board.#configure());
    return board;
  }

  /** Why TCP streams cannot be served now (nginx missing or failing), or null. */
  get problem(): string | null {
    return this.#problem;
  }

  /** The ports nginx could not listen on at start and why, for messages. */
  get held(): ReadonlyMap<number, string> {
    return this.#held;
  }

  /** True when nginx listens on `port`. */
  listens(port: number): boolean {
    return this.#listening.has(port);
  }

  /**
   * Makes sure nginx runs and listens on `port`: starts it again if it
   * could not run before, and adds the port if another program held it at
   * start and it is free now (that one case reloads). Throws a
   * `CONDUCTOR_ERR_STREAM_REFUSED` error that says why not.
   */
  claim(port: number): Promise<void> {
    return this.#serial(async () => {
      if (this.#problem !== null) await this.#configure();
      if (this.#problem !== null) throw refused(`Cannot publish a TCP service: this gateway's nginx cannot run: ${this.#problem}`);
      if (this.#listening.has(port)) return;
      if (this.#nginx === null) throw refused(`Cannot publish on port ${port}: the site's nginx does not relay it`);
      const problem = await bindProblem(port);
      if (problem !== null) {
        this.#held.set(port, problem);
        throw refused(`Cannot publish on port ${port}: ${problem}`);
      }
      const file = blockFileName(this.settings, port);
      await applyBlocks(this.#nginx, this.#paths.streamDir, new Map([[file, this.#block(port)]]), [port], this.#logger);
      this.#held.delete(port);
      this.#listening.add(port);
      this.#logger.info("stream port taken into nginx: it was held by another program at start", { port });
    });
  }

  /** Points `port` at `socket`: new connections reach it at once, without a reload. */
  async link(port: number, socket: string): Promise<void> {
    await this.links.link(port, socket);
  }

  /** Closes `port` to new connections at once; connections relayed already go on. */
  async unlink(port: number): Promise<void> {
    await this.links.unlink(port);
  }

  /** Relays `port` to an address (an admin's `host:port` stream): rewrites its block and reloads nginx. */
  setAddress(port: number, target: AddressTarget): Promise<void> {
    return this.#serial(async () => {
      await this.links.unlink(port);
      await this.#rewrite(port, () => this.#addresses.set(port, target), () => this.#addresses.delete(port));
    });
  }

  /** Relays `port` to its link again (an admin's `host:port` stream removed): rewrites its block and reloads nginx. */
  clearAddress(port: number): Promise<void> {
    return this.#serial(async () => {
      const before = this.#addresses.get(port);
      if (before === undefined) return;
      await this.#rewrite(port, () => this.#addresses.delete(port), () => this.#addresses.set(port, before));
    });
  }

  /** Stops watching nginx, which goes on relaying until the next start adopts it. */
  async detach(): Promise<void> {
    await this.#queue.catch(() => {});
    this.#nginx?.detach();
  }

  /**
   * After a start of the gateway that failed: stops the nginx this start
   * launched (it relays nothing anyone relies on yet), and leaves one it
   * adopted relaying as before.
   */
  async abandon(): Promise<void> {
    await this.#queue.catch(() => {});
    if (this.#nginx?.startedHere) await this.#nginx.stop();
    else this.#nginx?.detach();
  }

  /** Rewrites `port`'s block after `change`; `undo` puts the change back if nginx refuses it. */
  async #rewrite(port: number, change: () => void, undo: () => void): Promise<void> {
    if (this.#nginx === null) {
      throw refused(`Cannot relay port ${port} to an address: with --nginx-mode site, that needs the site's nginx reloaded, which the gateway never does; write that block into the site's configuration by hand, or give the backend as a unix: socket`);
    }
    if (this.#problem !== null) throw refused(`Cannot change port ${port}: this gateway's nginx cannot run: ${this.#problem}`);
    change();
    try {
      await applyBlocks(this.#nginx, this.#paths.streamDir, new Map([[blockFileName(this.settings, port), this.#block(port)]]), [], this.#logger);
    } catch (err) {
      undo();
      throw err;
    }
  }

  /** The block of `port`: to its address if an admin set one, else to its link. */
  #block(port: number): string {
    const target: PortTarget = this.#addresses.get(port) ?? { link: this.links.path(port) };
    return renderPortBlock(port, target, this.settings, this.#features);
  }

  /** Creates nginx's prefix and the stream and links directories, each the gateway's and writable by it alone. */
  async #prepare(): Promise<void> {
    const { prefix, streamDir } = this.#paths;
    try {
      if (this.#nginx !== null) {
        await fs.mkdir(prefix, { recursive: true, mode: 0o700 });
        await checkOwnDirectory(prefix, "nginx's prefix");
      }
      await fs.mkdir(streamDir, { recursive: true, mode: 0o700 });
      await checkOwnDirectory(streamDir, "the stream directory (--stream-dir)");
      await this.links.prepare();
    } catch (err) {
      if (err instanceof ConductorError) throw err;
      throw new ConductorError("CONDUCTOR_ERR_RUNTIME_DIR", `Cannot prepare the streams' files in ${prefix}: ${messageOf(err)}`, { cause: err });
    }
  }

  /**
   * Renders the configuration and brings nginx to it: adopts the nginx of a
   * previous start (reloading it only when the files changed), or starts a
   * new one; in site mode, writes the files for the site's nginx. Sets
   * {@link problem} instead of throwing when nginx cannot run.
   */
  async #configure(): Promise<void> {
    const { nginx: program, module } = this.settings;
    const version = await nginxVersion(program);
    if (version === null) {
      this.#problem = `${program} is missing or does not run; install nginx and its stream module (Debian: nginx-light, libnginx-mod-stream) or set --nginx`;
      this.#logger.warn(`TCP streams are off: ${this.#problem}`);
      return;
    }
    if (this.#nginx !== null && module !== BUILTIN_MODULE && await fs.access(module).then(() => false, () => true)) {
      this.#problem = `${module} is missing; install nginx's stream module (Debian: libnginx-mod-stream) or set --stream-module`;
      this.#logger.warn(`TCP streams are off: ${this.#problem}`);
      return;
    }
    this.#features = { halfClose: compare(version, HALF_CLOSE_SINCE) >= 0 };
    if (!this.#features.halfClose) {
      this.#logger.warn(`nginx ${version.join(".")} cannot relay half-closed connections (proxy_half_close needs nginx 1.21.4 or later): clients that close their sending side first lose the reply`);
    }
    if (this.#nginx === null) return this.#configureSite();
    const nginx = this.#nginx;
    const adopted = await nginx.adopt();
    if (!adopted) await nginx.killStrays();
    const existing = await this.#readFiles();
    await this.#choosePorts(adopted ? existing : new Map());
    const mainChanged = await this.#writeMainConfig();
    const changes = this.#changes(existing);
    try {
      if (adopted) {
        if (changes.size > 0 || mainChanged) await applyBlocks(nginx, this.#paths.streamDir, changes, [], this.#logger);
      } else {
        await writeBlocks(this.#paths.streamDir, changes);
        const complaint = await nginx.test();
        if (complaint !== null) throw new ConductorError("CONDUCTOR_ERR_NGINX", `Cannot start nginx for the streams: nginx -t refused the configuration: ${complaint}`);
        await nginx.start();
      }
      this.#problem = null;
    } catch (err) {
      this.#problem = messageOf(err);
      this.#logger.error(`TCP streams are off: ${this.#problem}`);
    }
  }

  /**
   * Site mode: writes the limit zones and a block for every port of the range
   * into the site's stream directory, and says when the site's nginx must
   * reload them or does not listen on the ports.
   */
  async #configureSite(): Promise<void> {
    const { first, last } = this.settings.range;
    this.#listening.clear();
    for (let port = first; port <= last; port++) this.#listening.add(port);
    const changes = this.#changes(await this.#readFiles());
    await writeBlocks(this.#paths.streamDir, changes);
    this.#problem = null;
    const reload = `have the site's nginx include ${this.#paths.streamDir}/${this.settings.prefix}*.conf in its stream {} block and reload it (systemctl reload nginx)`;
    if (changes.size > 0) this.#logger.warn(`the stream blocks changed: ${reload}`, { dir: this.#paths.streamDir, files: changes.size });
    const silent: number[] = [];
    for (const port of this.#listening) if (!await portAnswers(port, 500)) silent.push(port);
    if (silent.length > 0) this.#logger.warn(`the site's nginx does not listen on some stream ports: ${reload}`, { ports: silent });
  }

  /** What to write (or, null, remove) in the stream directory for the files there to be the wanted ones. */
  #changes(existing: Map<string, string>): Map<string, string | null> {
    const wanted = this.#wantedFiles();
    const changes = new Map<string, string | null>();
    for (const [file, text] of wanted) if (existing.get(file) !== text) changes.set(file, text);
    for (const file of existing.keys()) if (!wanted.has(file)) changes.set(file, null);
    return changes;
  }

  /** The gateway's files of the stream directory: the limit zones, and a block per port nginx listens on. */
  #wantedFiles(): Map<string, string> {
    const files = new Map([[zonesFileName(this.settings), renderZones()]]);
    for (const port of [...this.#listening].sort((a, b) => a - b)) files.set(blockFileName(this.settings, port), this.#block(port));
    return files;
  }

  /** Decides the ports nginx listens on: those of `ours` (an adopted nginx holds them) and those that can be bound now. */
  async #choosePorts(ours: Map<string, string>): Promise<void> {
    const { first, last } = this.settings.range;
    this.#listening.clear();
    this.#held.clear();
    for (let port = first; port <= last; port++) {
      const problem = ours.has(blockFileName(this.settings, port)) ? null : await bindProblem(port);
      if (problem === null) this.#listening.add(port);
      else this.#held.set(port, problem);
    }
    if (this.#held.size > 0) {
      this.#logger.warn("stream ports left out: another program holds them; they are tried again when asked for", {
        ports: [...this.#held.keys()], reason: this.#held.values().next().value, of: rangeSize(this.settings.range),
      });
    }
  }

  /** Writes nginx's main configuration if it changed; true when it did. */
  async #writeMainConfig(): Promise<boolean> {
    const sizing = sizeNginx(this.settings, this.#listening.size, openFilesLimit() ?? 1024);
    if (sizing.capped) {
      this.#logger.warn("the streams' nginx cannot hold --stream-max-connections on every port at once with this gateway's open-files limit; raise LimitNOFILE", {
        workerConnections: sizing.workerConnections,
      });
    }
    const text = renderMainConfig(this.settings, this.#paths, sizing, await rootWorkers());
    const current = await fs.readFile(this.#paths.config, "utf8").catch(() => null);
    if (current === text) return false;
    await writeFileAtomic(this.#paths.config, text, 0o600);
    return true;
  }

  /** The gateway's files of the stream directory (those with its prefix) and their text. */
  async #readFiles(): Promise<Map<string, string>> {
    const blocks = new Map<string, string>();
    for (const file of await fs.readdir(this.#paths.streamDir)) {
      if (file.startsWith(this.settings.prefix) && file.endsWith(".conf")) blocks.set(file, await fs.readFile(join(this.#paths.streamDir, file), "utf8"));
    }
    return blocks;
  }

  /** Runs `fn` after every change queued before it. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }
}

/**
 * Ends the streams' nginx of the gateway whose runtime directory is
 * `runtimeDir`, and every process it left: the relays it carries end.
 * Returns whether one was running. (`conductor-server --stop-streams`.)
 */
export async function stopStreams(settings: StreamSettings, runtimeDir: string, logger: Logger): Promise<boolean> {
  if (settings.mode === "site") return false;
  const paths = nginxPaths(settings, runtimeDir);
  // Not adopt(): its log line would tell the admin that the relays go on.
  return new OwnNginx({ program: settings.nginx, ...paths }, logger).stop();
}

/** The user and group of nginx's workers when the gateway runs as root (nginx would pick nobody), else undefined. */
async function rootWorkers(): Promise<{ name: string; group: string } | undefined> {
  if (process.geteuid?.() !== 0) return undefined;
  const account = await lookupAccount(0);
  return { name: account.name, group: await lookupGroupName(process.getegid?.() ?? 0) };
}

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function refused(message: string): ConductorError {
  return new ConductorError("CONDUCTOR_ERR_STREAM_REFUSED", message);
}

/**
 * The files site mode writes, as one text for the site's `stream {}` block
 * (`conductor-server --print-stream-config`): the limit zones and a block per
 * port of the range, each relaying to its link under `runtimeDir`.
 */
export async function siteStreamConfig(settings: StreamSettings, runtimeDir: string): Promise<string> {
  const version = await nginxVersion(settings.nginx);
  const features = { halfClose: version === null || compare(version, HALF_CLOSE_SINCE) >= 0 };
  const links = new PortLinks(join(runtimeDir, "streams"));
  const blocks = [renderZones()];
  for (let port = settings.range.first; port <= settings.range.last; port++) blocks.push(renderPortBlock(port, { link: links.path(port) }, settings, features));
  return blocks.join("\n");
}
