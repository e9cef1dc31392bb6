/**
 * One client on the control socket: banner with a fresh directory, one
 * registration, then the connection is held; its end removes the route and
 * the directory.
 *
 * @module
 */
import type { Socket } from "node:net";
import { ConductorError, messageOf } from "../lib/errors.ts";
import { RoutePool } from "../gateway/pool.ts";
import { RECONNECT_GRACE_MS, type Route } from "../gateway/routes.ts";
import { clock, everySecond } from "../lib/sweeper.ts";
import { ADMIN_OWNER, type StreamManager, type StreamRecord } from "../streams/manager.ts";
import { checkPort } from "../streams/validate.ts";
import { admit, admitSocket, identify } from "./admission.ts";
import { createClientDir, removeClientDir } from "./directories.ts";
import type { RouteContext } from "./waiting.ts";
import { readLines } from "./lines.ts";
import { decodeLine, encodeLine, parseRegister, type RegisterRequest } from "./protocol.ts";
import { probeSocket } from "../lib/socket_check.ts";

/**
 * What becomes of a route when its connection ends: `drop` removes it;
 * `replaced` removes it too, but lets the requests in progress on it finish
 * (a new registration took its place); `keep` (the gateway is stopping)
 * leaves it published while the requests in progress finish, and in the
 * state with its directory for the next start to take over.
 */
export type RouteFate = "drop" | "replaced" | "keep";

/** What every control connection shares: what routes need (as for waiting routes), and the connections' own limits and sets. */
export interface ControlContext extends RouteContext {
  /** The scheme browsers reach the gateway with, told to clients in replies. */
  scheme: "http" | "https";
  maxRoutesPerUser: number;
  configTimeoutMs: number;
  /** A route without browser activity for this long is closed (--max-idle), in ms; 0 for never. */
  maxIdleMs: number;
  /** Runs closed for being idle (user, key, token hash), until when a new registration of theirs is refused. */
  idleClosed: Map<string, number>;
  /** Connections waiting for their config. */
  pending: number;
  /** Open connections. */
  open: Set<ControlConnection>;
  /** Directory removals in progress, awaited at shutdown. */
  removals: Set<Promise<void>>;
  /** The TCP streams, or null when this gateway publishes none. */
  streams: StreamManager | null;
}

const NEW = 0, REGISTERING = 1, LIVE = 2, CLOSED = 3;

/** A client connection on the control socket. */
export class ControlConnection {
  readonly socket: Socket;
  readonly id: number;
  /** When the client connected (ms since the epoch). */
  readonly openedAt = Date.now();
  #ctx: ControlContext;
  #state = NEW;
  #directory: string | null = null;
  #route: Route | null = null;
  /** The TCP stream this connection holds (`"kind": "tcp"`), instead of a route. */
  #stream: StreamRecord | null = null;
  #timer: NodeJS.Timeout | null;
  #stopReading: (() => void) | null = null;
  /** What a live client sent after its registration (a goodbye, normally nothing), bounded. */
  #after = "";
  /** The route's last activity told to the client. */
  #reported = 0;
  /** When the registration went live (coarse clock): idle time counts from there before any activity. */
  #liveSince = 0;
  #stopSweep: (() => void) | null = null;
  /** The gateway ended the registration on purpose (--max-idle): the route goes at once, like after a goodbye. */
  #endedHere = false;

  constructor(socket: Socket, id: number, ctx: ControlContext) {
    this.socket = socket;
    this.id = id;
    this.#ctx = ctx;
    ctx.open.add(this);
    ctx.pending++;
    this.#timer = setTimeout(() => {
      ctx.logger.info("control connection sent no config in time; closing", { conn: id, seconds: ctx.configTimeoutMs / 1000 });
      this.close("no config in time");
    }, ctx.configTimeoutMs);
    socket.on("error", (err) => {
      ctx.logger.debug("control connection error", { conn: id, error: err });
      this.close("the control connection failed");
    });
    socket.on("close", () => this.close("the control connection closed"));
    this.#stopReading = readLines(socket, {
      line: (line) => this.#onLine(line),
      end: () => this.close("the client closed the control connection"),
      overflow: () => this.#refuse("Cannot parse control message: line too long"),
    });
    createClientDir(ctx.socketsDir).then((dir) => {
      if (this.#state === CLOSED) return removeClientDir(dir);
      this.#directory = dir;
      this.#reply({ status: "ok", directory: dir });
      ctx.logger.debug("control connection", { conn: id, dir });
    }).catch((err) => {
      ctx.logger.error("cannot create client directory", { dir: ctx.socketsDir, error: err });
      this.#refuse(`Cannot create a client directory in ${ctx.socketsDir}: ${messageOf(err)}`);
    });
  }

  /** The client directory assigned to it, once made. */
  get directory(): string | null {
    return this.#directory;
  }

  /** True while it has sent nothing: it may be made to give way to another client. */
  get silent(): boolean {
    return this.#state === NEW;
  }

  /** Closes a silent connection to make room for another client, telling it why. */
  giveWay(): void {
    this.#ctx.logger.info("control socket full; closing a connection that sent no config", { conn: this.id, seconds: Math.round((Date.now() - this.openedAt) / 1000) });
    this.#refuse("Cannot register: the gateway's control socket is full and this connection had sent nothing yet; try again");
  }

  /**
   * Ends the connection, and the route it holds as `fate` says; `graceful`
   * lets a last reply reach the client. Safe to call twice.
   */
  close(reason: string, fate: RouteFate = "drop", graceful = false): void {
    if (this.#state === CLOSED) return;
    const ctx = this.#ctx;
    if (this.#state !== LIVE) ctx.pending--;
    this.#state = CLOSED;
    this.#clearTimer();
    this.#stopSweep?.();
    this.#stopSweep = null;
    ctx.open.delete(this);
    const route = this.#route;
    this.#route = null;
    const stream = this.#stream;
    this.#stream = null;
    // A kept route stays published while the requests in progress finish; the next start takes it over.
    if (route !== null && fate !== "keep") {
      // Without a goodbye the client may be reconnecting: its host answers 503, not 404, for a while.
      if (ctx.routes.remove(route, this.#endedHere || this.#saidGoodbye() ? 0 : RECONNECT_GRACE_MS)) {
        ctx.state.removeRoute(route.user, route.key, route.directory);
        ctx.logger.info("route removed", { key: route.key, user: route.user, reason });
      }
      if (fate === "replaced") route.pool.retire();
      else route.pool.destroy();
    }
    if (graceful) this.socket.end();
    else this.socket.destroy();
    const dir = this.#directory;
    // A stream goes before its directory, so that nginx never relays to a socket that is gone.
    const streamGone = stream !== null && fate !== "keep" && ctx.streams !== null
      ? ctx.streams.remove(stream.port, (s) => s.directory === stream.directory).then(() => {}, (err) => {
        ctx.logger.error(`Cannot remove stream ${stream.port}: ${messageOf(err)}`, { owner: stream.owner, name: stream.name });
      })
      : Promise.resolve();
    if (dir !== null && !(fate === "keep" && (route !== null || stream !== null))) {
      const removal = streamGone.then(() => removeClientDir(dir))
        .catch((err) => ctx.logger.warn("cannot remove client directory; it is locked, remove it as root", { dir, error: err }))
        .finally(() => ctx.removals.delete(removal));
      ctx.removals.add(removal);
    }
  }

  #onLine(line: string): void {
    if (this.#state !== NEW) return;
    this.#state = REGISTERING;
    this.#register(line).catch((err) => {
      this.#ctx.logger.info("registration refused", { conn: this.id, reason: messageOf(err), code: (err as ConductorError).code });
      this.#refuse(messageOf(err));
    });
  }

  async #register(line: string): Promise<void> {
    const ctx = this.#ctx;
    const message = decodeLine(line);
    const dir = this.#directory;
    if (dir === null) throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", "Cannot handle control message: it came before the banner");
    if (message.op === "list") return this.#list(dir);
    if (message.op !== undefined && message.op !== "register") {
      throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot handle control message: unknown op ${JSON.stringify(message.op)}; this gateway knows register and list`);
    }
    const request = parseRegister(message);
    if (message.kind === "tcp") return this.#registerStream(dir, request, message.port);
    if (message.kind !== undefined && message.kind !== "http") {
      throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot register: unknown kind ${JSON.stringify(message.kind)}; this gateway publishes http and tcp`);
    }
    const admission = await admit(dir, request, ctx.routes, ctx.maxRoutesPerUser);
    const closedUntil = ctx.idleClosed.get(runKey(admission.user, admission.key, admission.authHash)) ?? 0;
    if (closedUntil > clock.now) {
      throw new ConductorError("CONDUCTOR_ERR_PROTOCOL",
        `Cannot register route ${admission.key}: this run was closed for being idle past the gateway's --max-idle; start a new run (with a new token) to publish the app again`);
    }
    if (this.#state === CLOSED) throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", "Cannot register route: the client went away");
    const route: Route = {
      key: admission.key,
      user: admission.user,
      name: admission.name,
      uid: admission.uid,
      socketPath: admission.socketPath,
      directory: dir,
      authHash: admission.authHash,
      hosts: ctx.routes.hostsOf(admission.key, admission.user),
      created: Date.now(),
      // The same run coming back keeps the activity seen while it was away (reported below).
      lastActivity: admission.replaces?.authHash.equals(admission.authHash) ? admission.replaces.lastActivity : 0,
      pool: new RoutePool(admission.socketPath, ctx.stats, ctx.pool),
      waiting: false,
      release: (why) => this.close(why, "replaced"),
    };
    // The same token is the same run coming back after a drop; another run only takes a route whose client is gone.
    ctx.routes.add(route, admission.replaces);
    if (admission.replaces !== undefined) {
      const sameRun = admission.replaces.authHash.equals(admission.authHash);
      admission.replaces.release(sameRun ? "replaced by a new registration of the same run" : "taken by another run: its own client was gone");
      ctx.logger.info("route replaced", { key: route.key, user: route.user, sameRun });
    }
    ctx.state.saveRoute(route.user, {
      key: route.key, name: route.name, uid: route.uid, socket: route.socketPath, directory: dir,
      auth: request.auth, created: new Date(route.created).toISOString(),
    });
    this.#route = route;
    this.#goLive();
    // "activity": this gateway tells the client about browser activity (an extension; older clients ignore it).
    this.#reply({ status: "ok", urls: [...route.hosts], scheme: ctx.scheme, activity: true });
    ctx.logger.info("route added", { key: route.key, name: route.name, user: route.user, uid: route.uid, hosts: route.hosts });
    this.#liveSince = clock.now;
    this.#stopSweep = everySecond((now) => this.#sweepActivity(route, now));
  }

  /**
   * Publishes the client's socket as a TCP stream (`"kind": "tcp"`, an
   * extension) on a port of the gateway's range, the one it asks for
   * (`"port"`) or its sticky one, and answers with `"address"` and `"port"`.
   */
  async #registerStream(dir: string, request: RegisterRequest, port: unknown): Promise<void> {
    const ctx = this.#ctx;
    const streams = ctx.streams;
    if (streams === null) {
      throw new ConductorError("CONDUCTOR_ERR_STREAM_REFUSED", "Cannot publish a TCP service: this gateway publishes web apps only (conductor-server runs with --no-streams)");
    }
    const owner = await admitSocket(dir);
    if (owner.user === ADMIN_OWNER) throw new ConductorError("CONDUCTOR_ERR_STREAM_REFUSED", `Cannot publish a TCP service as user ${ADMIN_OWNER}: that name marks the admin's streams`);
    await probeSocket(owner.socketPath);
    const { stream, replaced } = await streams.publish({
      owner: owner.user, uid: owner.uid, name: request.name, backend: `unix:${owner.socketPath}`, directory: dir, auth: request.auth,
      port: port === undefined || port === null ? undefined : checkPort(port, streams.settings.range),
    });
    if (this.#state === CLOSED) {
      // The client left while nginx was reloading: the stream goes with it.
      await streams.remove(stream.port, (s) => s.directory === dir);
      throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", "Cannot register stream: the client went away");
    }
    this.#stream = stream;
    this.#goLive();
    // A stream kept across a restart, now the client's again: nothing else holds its old directory.
    const old = replaced?.directory;
    if (old !== undefined && old !== dir && ![...ctx.open].some((c) => c.directory === old)) {
      removeClientDir(old).catch((err) => ctx.logger.warn("cannot remove client directory; it is locked, remove it as root", { dir: old, error: err }));
    }
    const address = streams.address(stream.port);
    this.#reply({ status: "ok", urls: [], scheme: ctx.scheme, activity: false, kind: "tcp", address, port: stream.port });
    ctx.logger.info("stream added", { port: stream.port, name: stream.name, user: stream.owner, uid: owner.uid, address });
  }

  /** The registration is in: from now on only a goodbye and the end of the connection matter. */
  #goLive(): void {
    this.#state = LIVE;
    this.#ctx.pending--;
    this.#clearTimer();
    // Drop the line reader, keep a few bytes.
    this.#stopReading?.();
    this.#stopReading = null;
    this.socket.on("data", (chunk: Buffer) => {
      if (this.#after.length < 1024) this.#after += chunk.toString("utf8", 0, Math.min(chunk.length, 1024));
    });
    this.socket.once("end", () => this.close(this.#saidGoodbye() ? "the client said goodbye" : "the client closed the control connection"));
  }

  /**
   * Once a second: tells the client of browser activity since the last report
   * (`{"op": "activity", "idle": SECONDS}`, at most one line a second), and
   * closes a route idle past --max-idle with `{"op": "close", "reason": ...}`.
   */
  #sweepActivity(route: Route, now: number): void {
    const last = route.lastActivity;
    // Any change is news (the wall clock may step back); a client that does not read gets no more until it does.
    if (last !== 0 && last !== this.#reported && this.socket.writableLength < 1024) {
      this.#reported = last;
      this.#reply({ op: "activity", idle: Math.max(0, Math.floor((now - last) / 1000)) });
    }
    const ctx = this.#ctx;
    const idle = Math.floor((now - Math.max(last, this.#liveSince)) / 1000);
    if (ctx.maxIdleMs > 0 && idle * 1000 >= ctx.maxIdleMs) {
      const reason = `No browser used this app for ${idle} s, the limit of this gateway (conductor-server --max-idle ${ctx.maxIdleMs / 1000}s)`;
      ctx.logger.info("route idle past --max-idle; closing", { key: route.key, user: route.user, seconds: idle });
      // An original client takes the close for a drop and registers again with the same token: refuse that run.
      for (const [run, until] of ctx.idleClosed) if (until <= now) ctx.idleClosed.delete(run);
      ctx.idleClosed.set(runKey(route.user, route.key, route.authHash), now + Math.max(ctx.maxIdleMs, IDLE_RUN_REFUSED_MS));
      this.#endedHere = true;
      this.#reply({ op: "close", reason, idle });
      this.close(reason, "drop", true);
    }
  }

  /**
   * Answers `{"op": "list"}`: the live services of the user who placed
   * `whoami`, without tokens, with their browsers' last use (only the owner
   * learns it: the status pages show no route).
   */
  async #list(dir: string): Promise<void> {
    const ctx = this.#ctx;
    const user = await identify(dir);
    const now = Date.now();
    const routes = [...ctx.routes.all()].filter((r) => r.user === user).map((r) => ({
      name: r.name, kind: "http", key: r.key, urls: [...r.hosts], scheme: ctx.scheme, created: new Date(r.created).toISOString(),
      lastActivity: r.lastActivity === 0 ? null : new Date(r.lastActivity).toISOString(),
      idle: Math.max(0, Math.floor((now - (r.lastActivity || r.created)) / 1000)),
    }));
    const streams = ctx.streams === null ? [] : ctx.streams.list().filter((s) => s.owner === user).map((s) => ({
      name: s.name, kind: "tcp", key: s.name, urls: [], scheme: ctx.scheme, created: s.created, address: ctx.streams!.address(s.port), port: s.port,
    }));
    const services = [...routes, ...streams];
    this.#reply({ status: "ok", user, services });
    this.close("list answered", "drop", true);
  }

  /** True when the client sent the goodbye line before closing. */
  #saidGoodbye(): boolean {
    return this.#after.split("\n").some((line) => {
      try {
        return decodeLine(line).op === "close";
      } catch {
        return false;
      }
    });
  }

  #refuse(reason: string): void {
    this.#reply({ status: "error", reason });
    this.close(reason, "drop", true);
  }

  #reply(message: Parameters<typeof encodeLine>[0]): void {
    if (!this.socket.destroyed) this.socket.write(encodeLine(message));
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}

/** How long, at least, a run closed for being idle is refused if it registers again, in ms (--max-idle if longer). */
const IDLE_RUN_REFUSED_MS = 600_000;

/** The key of one run's registrations: its user, route key and token hash. */
function runKey(user: string, key: string, authHash: Buffer): string {
  return `${user}/${key}/${authHash.toString("hex")}`;
}
