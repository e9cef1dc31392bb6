/**
 * The registrar's TCP streams: which port relays to which socket or
 * backend, for whom. A user's stream points its port's link at the user's
 * forwarded socket (no reload); when its connection drops without a
 * goodbye, the port stays reserved for that user and name for
 * --stream-grace. Admins' streams come from the admin API. Every change
 * runs in one queue, in order, and work queued for a client that has left
 * is dropped; `<state dir>/streams.json` is saved after each.
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import { dirname } from "node:path";
import { ConductorError, messageOf } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { inspectRouteSocket, probeSocket, socketAnswers } from "../../lib/socket_check.ts";
import { lookupAccount } from "../../lib/users.ts";
import { ADMIN_OWNER, StreamsFile, type StreamRecord } from "../../state/streams_file.ts";
import type { StreamSettings } from "../../streams/settings.ts";
import { Switchboard, type AddressTarget } from "../../streams/switchboard.ts";
import { checkBackend, checkPort, checkStreamName, rangeSize } from "../../streams/validate.ts";
import { SOCKET_NAME } from "../directories.ts";
import type { Json, RegisterRequest } from "../protocol.ts";
import type { SocketOwner } from "./admission.ts";
import { mayTake } from "./policy.ts";
import { PortPolicy, serviceKey } from "./ports.ts";
import type { Ending, Holder, StreamPublication } from "./publication.ts";

/** Where the stream side keeps its files, and what it shares with the registrar. */
export interface StreamSideOptions {
  settings: StreamSettings;
  runtimeDir: string;
  stateDir: string;
  socketsDir: string;
  logger: Logger;
  /** Removes a client directory once `after` settled (tracked, so that a stop waits for it). */
  removeDirectory(dir: string, after?: Promise<unknown>): void;
  /** The clock of the grace periods, in ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** The published streams of one gateway. */
export class StreamSide {
  readonly settings: StreamSettings;
  readonly #o: StreamSideOptions;
  readonly #board: Switchboard;
  readonly #file: StreamsFile;
  readonly #ports: PortPolicy;
  /** Every published stream, users' and admins', by port. */
  readonly #streams = new Map<number, StreamRecord>();
  /** Users' streams, by port. */
  readonly #publications = new Map<number, StreamPublication>();
  #queue: Promise<unknown> = Promise.resolve();
  readonly #now: () => number;

  private constructor(options: StreamSideOptions, board: Switchboard, file: StreamsFile, ports: PortPolicy) {
    this.settings = options.settings;
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#board = board;
    this.#file = file;
    this.#ports = ports;
  }

  /**
   * Loads the stored streams, keeps those that can still serve (a user's
   * only while its socket answers; the client then registers again), opens
   * the switchboard (adopting a running nginx), and points the ports' links
   * at what they relay to.
   */
  static async open(options: StreamSideOptions): Promise<StreamSide> {
    const { settings, logger } = options;
    const file = new StreamsFile(options.stateDir, logger);
    const stored = await file.load();
    const ports = new PortPolicy(settings.range, stored.sticky);
    const kept: StreamRecord[] = [];
    const addresses = new Map<number, AddressTarget>();
    const now = (options.now ?? Date.now)();
    for (const record of stored.streams) {
      const why = await unfit(record, kept, options);
      if (why !== null) {
        logger.info("stored stream dropped at start", { port: record.port, owner: record.owner, name: record.name, reason: why });
        // Its client may be reconnecting: the port waits for it.
        if (record.owner !== ADMIN_OWNER) ports.reserve(record.port, serviceKey(record.owner, record.name), now + settings.graceMs);
        continue;
      }
      if (record.address !== undefined) addresses.set(record.port, addressTarget(record));
      kept.push(record);
    }
    const board = await Switchboard.open(settings, options.runtimeDir, addresses, logger);
    const side = new StreamSide(options, board, file, ports);
    await side.#serial(() => side.#takeOver(kept));
    return side;
  }

  /** The address clients are told for `port`. */
  address(port: number): string {
    return `${this.settings.host}:${port}`;
  }

  /** Every published stream, by port. */
  list(): StreamRecord[] {
    return [...this.#streams.values()].sort((a, b) => a.port - b.port);
  }

  /** The stream on `port`, if any. */
  get(port: number): StreamRecord | undefined {
    return this.#streams.get(port);
  }

  /** Users' published streams. */
  publications(): IterableIterator<StreamPublication> {
    return this.#publications.values();
  }

  /** Client directories of users' streams (kept when the sockets directory is swept). */
  directories(): Set<string> {
    return new Set([...this.#publications.values()].map((p) => p.directory));
  }

  /** The streams of `user`, as `conductor list` shows them. */
  listOf(user: string, scheme: string): Array<{ [key: string]: Json }> {
    return this.list().filter((s) => s.owner === user).map((s) => ({
      name: s.name, kind: "tcp", key: s.name, urls: [], scheme, created: s.created, address: this.address(s.port), port: s.port,
    }));
  }

  /**
   * Publishes `owner`'s socket as stream `request.name` on the port asked
   * for (`port`), or its sticky one, or a free one; in place of the user's
   * stream of that name if the same run holds it (or a run whose client is
   * gone). Throws a `ConductorError` that says why not.
   */
  async register(owner: SocketOwner, directory: string, request: RegisterRequest, port: unknown, holder: Holder): Promise<StreamPublication> {
    const name = checkStreamName(request.name);
    const asked = port === undefined || port === null ? undefined : checkPort(port, this.settings.range);
    if (owner.user === ADMIN_OWNER) throw refused(`Cannot publish a TCP service as user ${ADMIN_OWNER}: that name marks the admin's streams`);
    await probeSocket(owner.socketPath);
    return this.#serial(async () => {
      if (holder.gone) throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", "Cannot register stream: the client went away");
      const key = serviceKey(owner.user, name);
      const mine = this.#named(owner.user, name);
      const replaces = mine === undefined ? undefined : this.#publications.get(mine.port);
      if (replaces !== undefined && !await mayTake(replaces, request.auth)) {
        throw refused(`Cannot publish stream ${name}: user ${owner.user} already has a live stream of that name on port ${mine!.port} from another conductor run; stop that one, or choose another --name`);
      }
      if (mine === undefined && this.list().filter((s) => s.owner === owner.user).length >= this.settings.perUser) {
        throw refused(`Cannot publish stream ${name}: user ${owner.user} already holds ${this.settings.perUser} streams, the limit of this gateway (--streams-per-user); stop one first (conductor list)`);
      }
      const chosen = asked !== undefined ? await this.#claimAsked(asked, key, mine) : await this.#pick(key, mine?.port);
      if (holder.gone) throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", "Cannot register stream: the client went away");
      await this.#board.link(chosen, owner.socketPath);
      if (mine !== undefined && mine.port !== chosen) {
        this.#streams.delete(mine.port);
        await this.#board.unlink(mine.port);
      }
      const record: StreamRecord = {
        port: chosen, owner: owner.user, name, backend: `unix:${owner.socketPath}`, directory, uid: owner.uid, auth: request.auth, created: new Date().toISOString(),
      };
      this.#streams.set(chosen, record);
      const publication = this.#track(record, holder);
      this.#ports.release(chosen);
      // A drop turns a live port into a kept one: the sum stays within the limit.
      this.#limitReservations(owner.user);
      this.#ports.remember(key, chosen);
      if (replaces !== undefined) this.#replaced(replaces);
      await this.#save();
      this.#o.logger.info("stream added", { port: chosen, name, user: owner.user, uid: owner.uid, address: this.address(chosen), replaced: replaces !== undefined });
      return publication;
    });
  }

  /** Ends `publication` as its connection ended (see {@link Ending}); `reason` is logged. Safe to call twice. */
  end(publication: StreamPublication, ending: Ending, reason: string): void {
    if (publication.ended) return;
    publication.ended = true;
    const { port, owner, name } = publication.record;
    this.#publications.delete(port);
    // A kept stream stays linked: nginx relays it while the gateway is down, and the next start takes it over.
    if (ending === "kept") return;
    if (this.#streams.get(port) === publication.record) this.#streams.delete(port);
    // Without a goodbye the client is probably coming back: its port waits for it.
    if (ending === "dropped") this.#ports.reserve(port, serviceKey(owner, name), this.#now() + this.settings.graceMs);
    const unlinked = this.#serial(async () => {
      // A registration queued before this one may have published the port again.
      if (!this.#streams.has(port)) await this.#board.unlink(port);
      await this.#save();
      this.#o.logger.info("stream removed", { port, user: owner, name, reason, reserved: ending === "dropped" ? this.settings.graceMs / 1000 : 0 });
    }).catch((err) => this.#o.logger.error(`Cannot close stream port ${port}: ${messageOf(err)}`, { owner, name }));
    this.#o.removeDirectory(publication.directory, unlinked);
  }

  /** A free port for an admin's stream, or null when none is left. */
  freePort(): number | null {
    return this.#ports.candidates(serviceKey(ADMIN_OWNER, ""), (p) => this.#streams.has(p), this.#now()).find((p) => this.#board.listens(p)) ?? null;
  }

  /**
   * Publishes an admin's stream `name` on `port` to `backend` (`host:port`,
   * resolved now, whose address nginx relays to; or a `unix:` socket in the
   * sockets directory); `name` defaults to `port-PORT`. Throws `CONDUCTOR_ERR_STREAM_INVALID` for bad input,
   * `CONDUCTOR_ERR_STREAM_REFUSED` when the port or the name is taken.
   */
  async createAdmin(port: unknown, backend: unknown, name: unknown): Promise<StreamRecord> {
    const checkedBackend = checkBackend(backend, this.#o.socketsDir);
    const checkedPort = checkPort(port, this.settings.range);
    const checkedName = checkStreamName(name ?? `port-${checkedPort}`);
    return this.#serial(async () => {
      const holder = this.#streams.get(checkedPort);
      if (holder !== undefined) throw refused(`Cannot create a stream on port ${checkedPort}: ${holder.owner}'s stream ${holder.name} listens there; remove it first`);
      const reserved = this.#ports.reservation(checkedPort, this.#now());
      if (reserved !== undefined) {
        throw refused(`Cannot create a stream on port ${checkedPort}: it is kept for ${reserved.key} (its client dropped) for ${Math.ceil((reserved.until - this.#now()) / 1000)} s more; try another port`);
      }
      const same = this.#named(ADMIN_OWNER, checkedName);
      if (same !== undefined) throw refused(`Cannot create stream ${checkedName}: the admin's stream of that name listens on port ${same.port}; remove it first or choose another name`);
      await this.#board.claim(checkedPort);
      const record: StreamRecord = { port: checkedPort, owner: ADMIN_OWNER, name: checkedName, backend: checkedBackend, created: new Date().toISOString() };
      if (checkedBackend.startsWith("unix:")) {
        await this.#board.link(checkedPort, checkedBackend.slice(5));
      } else {
        record.address = await resolveBackend(checkedBackend);
        await this.#board.setAddress(checkedPort, addressTarget(record));
      }
      this.#streams.set(checkedPort, record);
      this.#ports.remember(serviceKey(ADMIN_OWNER, checkedName), checkedPort);
      await this.#save();
      this.#o.logger.info("stream admin API: stream created", { port: checkedPort, backend: checkedBackend, address: record.address, name: checkedName });
      return record;
    });
  }

  /** Removes the admin's stream on `port`; throws `CONDUCTOR_ERR_NOT_FOUND`, or `CONDUCTOR_ERR_STREAM_REFUSED` for a user's. */
  async removeAdmin(port: unknown): Promise<void> {
    const checkedPort = checkPort(port, this.settings.range);
    await this.#serial(async () => {
      const stream = this.#streams.get(checkedPort);
      if (stream === undefined) throw new ConductorError("CONDUCTOR_ERR_NOT_FOUND", `Cannot remove the stream on port ${checkedPort}: there is none`);
      if (stream.owner !== ADMIN_OWNER) {
        throw refused(`Cannot remove the stream on port ${checkedPort}: it is user ${stream.owner}'s (service ${stream.name}) and goes when its conductor stops; ask the user, or end their conductor`);
      }
      if (stream.address !== undefined) await this.#board.clearAddress(checkedPort);
      else await this.#board.unlink(checkedPort);
      this.#streams.delete(checkedPort);
      await this.#save();
      this.#o.logger.info("stream admin API: stream removed", { port: checkedPort });
    });
  }

  /**
   * Stops watching nginx, which goes on relaying the streams kept for the
   * next start; `failedStart`: the gateway's start failed, so an nginx it
   * launched itself is stopped instead.
   */
  async close(failedStart = false): Promise<void> {
    await this.#queue.catch(() => {});
    if (failedStart) await this.#board.abandon();
    else await this.#board.detach();
  }

  /** Publishes the streams kept at start and makes the links agree with them. */
  async #takeOver(kept: StreamRecord[]): Promise<void> {
    const links = await this.#board.links.read();
    for (const record of kept) {
      if (this.#board.problem === null && !this.#board.listens(record.port)) {
        this.#o.logger.info("stored stream dropped at start", { port: record.port, owner: record.owner, name: record.name, reason: this.#board.held.get(record.port) });
        continue;
      }
      this.#streams.set(record.port, record);
      if (record.owner !== ADMIN_OWNER) this.#track(record, null);
      const target = record.address === undefined ? record.backend.slice(5) : undefined;
      if (target !== undefined && links.get(record.port) !== target) await this.#board.link(record.port, target);
    }
    for (const port of links.keys()) {
      const stream = this.#streams.get(port);
      if (stream === undefined || stream.address !== undefined) await this.#board.unlink(port);
    }
    if (this.#publications.size > 0) this.#o.logger.info("streams kept across the restart", { count: this.#streams.size });
    await this.#save();
  }

  /** Checks a port asked for: in the range (checked), not another service's, not kept for one, and served by nginx. */
  async #claimAsked(port: number, key: string, mine: StreamRecord | undefined): Promise<number> {
    if (port === mine?.port) return port;
    const rule = `ports ${this.settings.range.first}-${this.settings.range.last} go to whoever asks first, ${this.settings.perUser} per user`;
    const holder = this.#streams.get(port);
    if (holder !== undefined) {
      throw refused(`Cannot publish on port ${port}: it is held by ${holder.owner === mine?.owner ? `your stream ${holder.name}` : "another service"}; ${rule}; leave out --port to get a free one`);
    }
    if (!this.#ports.mayHave(port, key, this.#now())) {
      throw refused(`Cannot publish on port ${port}: it is kept for another service whose client dropped, until it comes back or its grace ends; ${rule}; leave out --port to get a free one`);
    }
    await this.#board.claim(port);
    return port;
  }

  /**
   * The port `key` gets: `current` if it has one, else its sticky one, else
   * a free one; ports nginx listens on first, then those another program
   * held at start (one may be free now).
   */
  async #pick(key: string, current: number | undefined): Promise<number> {
    if (current !== undefined) {
      await this.#board.claim(current);
      return current;
    }
    const candidates = this.#ports.candidates(key, (p) => this.#streams.has(p), this.#now());
    const ordered = [...candidates.filter((p) => this.#board.listens(p)), ...candidates.filter((p) => !this.#board.listens(p))];
    for (const port of ordered) {
      try {
        await this.#board.claim(port);
        return port;
      } catch (err) {
        // nginx cannot run: no port will do.
        if (this.#board.problem !== null) throw err;
      }
    }
    const { first, last } = this.settings.range;
    const held = [...this.#board.held];
    // Each reason names its port.
    const why = held.length === 0 ? "" : `, ${held.length} of them because they cannot be bound (${held[0][1]})`;
    throw refused(`Cannot publish a TCP service: all ${rangeSize(this.settings.range)} ports of this gateway (${first}-${last}) are taken${why}; try again later, or ask its admin for a larger --port-range`);
  }

  /** Keeps the ports `owner` holds, live or kept for a client that dropped, within --streams-per-user. */
  #limitReservations(owner: string): void {
    this.#ports.limit(owner, this.settings.perUser - this.list().filter((s) => s.owner === owner).length, this.#now());
  }

  /** The published stream `name` of `owner`, if any. */
  #named(owner: string, name: string): StreamRecord | undefined {
    for (const s of this.#streams.values()) if (s.owner === owner && s.name === name) return s;
    return undefined;
  }

  #track(record: StreamRecord, holder: Holder | null): StreamPublication {
    const publication: StreamPublication = {
      kind: "tcp", user: record.owner, directory: record.directory!, socketPath: record.backend.slice(5), auth: record.auth ?? "",
      holder, silentSince: 0, ended: false, record,
    };
    this.#publications.set(record.port, publication);
    return publication;
  }

  /** Ends a publication a new registration of the same name took the place of: its directory goes, its holder closes. */
  #replaced(old: StreamPublication): void {
    old.ended = true;
    if (this.#publications.get(old.record.port) === old) this.#publications.delete(old.record.port);
    this.#o.removeDirectory(old.directory);
    old.holder?.replaced("replaced by a new registration of the same run");
  }

  async #save(): Promise<void> {
    await this.#file.save({ streams: this.list(), sticky: this.#ports.sticky });
  }

  /** Runs `fn` after every change queued before it. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }
}

/** Why a stored stream cannot be published again at start, or null when it can. */
async function unfit(record: StreamRecord, kept: StreamRecord[], options: StreamSideOptions): Promise<string | null> {
  try {
    checkPort(record.port, options.settings.range);
    checkStreamName(record.name);
    checkBackend(record.backend, options.socketsDir);
    if (kept.some((k) => k.port === record.port)) return "its port is another stream's";
    if (record.owner === ADMIN_OWNER) {
      // A stream stored before backends were resolved at creation gets its address now.
      if (record.address === undefined && !record.backend.startsWith("unix:")) record.address = await resolveBackend(record.backend);
      return null;
    }
    if (record.directory === undefined || dirname(record.backend.slice(5)) !== record.directory || !record.backend.endsWith(`/${SOCKET_NAME}`)) {
      return "its socket is not in its client directory";
    }
    const facts = await inspectRouteSocket(record.backend.slice(5));
    if (facts.uid !== record.uid) return "its socket changed owner";
    if ((await lookupAccount(facts.uid)).name.toLowerCase() !== record.owner) return "its owner has another name now";
    if (!await socketAnswers(record.backend.slice(5), 2000)) return "its socket does not answer";
    return null;
  } catch (err) {
    return messageOf(err);
  }
}

/** The address a `host:port` backend's name resolves to now, as nginx's `proxy_pass` takes it. */
async function resolveBackend(backend: string): Promise<string> {
  const colon = backend.lastIndexOf(":");
  const host = backend.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = backend.slice(colon + 1);
  try {
    const { address, family } = await lookup(host);
    return family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
  } catch (err) {
    throw new ConductorError("CONDUCTOR_ERR_STREAM_INVALID", `Cannot use backend ${backend}: its name does not resolve (${(err as NodeJS.ErrnoException).code ?? messageOf(err)}); give an address or a name this gateway can resolve`, { cause: err });
  }
}

function addressTarget(record: StreamRecord): AddressTarget {
  return { address: record.address!, note: `the admin's stream ${record.name} to ${record.backend}` };
}

function refused(message: string): ConductorError {
  return new ConductorError("CONDUCTOR_ERR_STREAM_REFUSED", message);
}
