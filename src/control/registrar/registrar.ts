/**
 * The registrar: the one owner of the life of what users publish, routes
 * and streams alike. It checks who registers, applies the per-user limits
 * and the rate limit, publishes, replaces (the same run coming back) and
 * ends publications, takes over the stored ones at a restart and watches
 * those waiting for their client, closes routes idle past --max-idle, and
 * removes client directories once nothing uses them. A control connection
 * only speaks the protocol and hands the registrar what it needs; the admin
 * API reaches the streams through {@link Registrar.streams}.
 *
 * @module
 */
import { ConductorError } from "../../lib/errors.ts";
import { everySecond } from "../../lib/sweeper.ts";
import type { StreamSettings } from "../../streams/settings.ts";
import { removeClientDir, sweepClientDirs } from "../directories.ts";
import type { Json, RegisterRequest } from "../protocol.ts";
import { admitSocket, identify } from "./admission.ts";
import { IdlePolicy } from "./idle.ts";
import type { Ending, Holder, Publication, RoutePublication, StreamPublication } from "./publication.ts";
import { DEFAULT_RATE, RegistrationRate, type RateSettings } from "./rate.ts";
import { RouteSide, type RouteContext } from "./routes.ts";
import { watchSilence } from "./silence.ts";
import { StreamSide } from "./streams.ts";

/** Settings of {@link Registrar.open}. */
export interface RegistrarOptions extends RouteContext {
  runtimeDir: string;
  /** Where the streams are stored. */
  stateDir: string;
  /** Most routes one user may hold. */
  maxRoutesPerUser: number;
  /** Close a route after this long without browser activity, in ms; 0 for never. */
  maxIdleMs: number;
  /** Each user's registrations at once and per minute. */
  rate?: RateSettings;
  /** TCP streams through nginx; undefined publishes web apps only. */
  streams?: StreamSettings;
  /** The clock of the grace periods and limits, in ms since the epoch (a test's fake one). Default `Date.now`. */
  now?: () => number;
}

/** The life of one gateway's routes and streams. */
export class Registrar {
  readonly #o: RegistrarOptions;
  readonly #routes: RouteSide;
  readonly #idle: IdlePolicy;
  readonly #rate: RegistrationRate;
  readonly #now: () => number;
  #streams: StreamSide | null = null;
  /** Directory removals in progress, awaited at close. */
  readonly #removals = new Set<Promise<void>>();
  readonly #stops: Array<() => void> = [];

  private constructor(options: RegistrarOptions) {
    this.#o = options;
    this.#idle = new IdlePolicy(options.maxIdleMs);
    const rate = options.rate ?? DEFAULT_RATE;
    // A user restarting every run at once gets through, and one past the limits is told of the limits first.
    this.#rate = new RegistrationRate({ ...rate, burst: Math.max(rate.burst, 2 * (options.maxRoutesPerUser + (options.streams?.perUser ?? 0))) });
    const removeDirectory = (dir: string, after?: Promise<unknown>): void => this.#removeDirectory(dir, after);
    this.#now = options.now ?? Date.now;
    this.#routes = new RouteSide({ ...options, maxPerUser: options.maxRoutesPerUser, idle: this.#idle, removeDirectory });
  }

  /**
   * Takes over the stored routes and streams (those whose socket still
   * answers), removes the client directories nothing uses, and starts
   * watching what waits for its client.
   */
  static async open(options: RegistrarOptions): Promise<Registrar> {
    const registrar = new Registrar(options);
    const { logger, socketsDir } = options;
    await registrar.#routes.adopt();
    if (options.streams !== undefined) {
      registrar.#streams = await StreamSide.open({
        settings: options.streams, runtimeDir: options.runtimeDir, stateDir: options.stateDir, socketsDir, logger, now: registrar.#now,
        removeDirectory: (dir, after) => registrar.#removeDirectory(dir, after),
      });
    }
    await Promise.all(registrar.#removals);
    const keep = new Set([...registrar.#routes.all()].map((p) => p.directory).concat([...registrar.#streams?.directories() ?? []]));
    const swept = await sweepClientDirs(socketsDir, keep);
    if (swept.removed.length > 0) logger.info("removed stale client directories", { count: swept.removed.length, dir: socketsDir });
    for (const { path, error } of swept.failed) {
      logger.warn("cannot remove a stale client directory; it is locked, remove it as root", { dir: path, error });
    }
    registrar.#stops.push(
      watchSilence(() => registrar.#waiting(), (p) => registrar.end(p, "dropped", "its socket stopped answering and the client did not come back"), registrar.#now),
      everySecond((now) => registrar.#sweepIdle(now)),
    );
    return registrar;
  }

  /** The streams, for the admin API; null when this gateway publishes web apps only. */
  get streams(): StreamSide | null {
    return this.#streams;
  }

  /**
   * Publishes the route a client asks for, from the socket it placed in
   * `directory`, held by `holder`; throws a `ConductorError` that says why not.
   */
  async registerRoute(directory: string, request: RegisterRequest, holder: Holder): Promise<RoutePublication> {
    const owner = await admitSocket(directory);
    this.#rate.take(owner.user, this.#now());
    return this.#routes.register(owner, directory, request, holder);
  }

  /**
   * Publishes the TCP stream a client asks for (on `port` if it asks for
   * one), from the socket it placed in `directory`, held by `holder`;
   * throws a `ConductorError` that says why not.
   */
  async registerStream(directory: string, request: RegisterRequest, port: unknown, holder: Holder): Promise<StreamPublication> {
    const streams = this.#streams;
    if (streams === null) {
      throw new ConductorError("CONDUCTOR_ERR_STREAM_REFUSED", "Cannot publish a TCP service: this gateway publishes web apps only (conductor-server runs with --no-streams)");
    }
    const owner = await admitSocket(directory);
    this.#rate.take(owner.user, this.#now());
    return streams.register(owner, directory, request, port, holder);
  }

  /** The live services of the user who placed `whoami` in `directory`, without tokens. */
  async list(directory: string, scheme: string): Promise<{ user: string; services: Array<{ [key: string]: Json }> }> {
    const user = await identify(directory);
    return { user, services: [...this.#routes.listOf(user, scheme, this.#now()), ...this.#streams?.listOf(user, scheme) ?? []] };
  }

  /** Ends `publication` as its connection ended (see {@link Ending}); `reason` is logged. Safe to call twice. */
  end(publication: Publication, ending: Ending, reason: string): void {
    if (publication.kind === "http") this.#routes.end(publication as RoutePublication, ending, reason);
    else this.#streams?.end(publication as StreamPublication, ending, reason);
  }

  /** Removes the directory of a connection that published nothing. */
  discard(directory: string): void {
    this.#removeDirectory(directory);
  }

  /**
   * Stops watching; waits for directory removals; leaves nginx relaying the
   * streams kept for the next start. `failedStart`: the gateway's start
   * failed, and an nginx this start launched is stopped instead.
   */
  async close(failedStart = false): Promise<void> {
    for (const stop of this.#stops.splice(0)) stop();
    await Promise.all(this.#removals);
    await this.#streams?.close(failedStart);
    await this.#o.state.flush();
  }

  /** Publications no connection holds: taken over at start, waiting for their client. */
  *#waiting(): Iterable<Publication> {
    for (const p of this.#routes.all()) if (p.holder === null) yield p;
    if (this.#streams !== null) for (const p of this.#streams.publications()) if (p.holder === null) yield p;
  }

  /** Once a second: tells held routes' clients of activity, and closes routes idle past --max-idle. */
  #sweepIdle(now: number): void {
    for (const publication of [...this.#routes.all()]) {
      if (publication.holder === null) continue;
      const idle = this.#idle.sweep(publication, now);
      if (idle === null) continue;
      this.#o.logger.info("route idle past --max-idle; closing", { key: publication.route.key, user: publication.user, seconds: idle.seconds });
      this.#routes.end(publication, "goodbye", idle.reason);
      publication.holder?.closedIdle(idle.reason, idle.seconds);
    }
  }

  /** Removes client directory `dir` once `after` settled; a stop waits for it. */
  #removeDirectory(dir: string, after: Promise<unknown> = Promise.resolve()): void {
    const removal: Promise<void> = after.then(() => removeClientDir(dir))
      .catch((err) => this.#o.logger.warn("cannot remove client directory; it is locked, remove it as root", { dir, error: err }))
      .finally(() => this.#removals.delete(removal));
    this.#removals.add(removal);
  }
}
