/**
 * One client on the control socket, speaking the protocol of protocol.ts:
 * a banner with a fresh directory, one request (a registration, or a
 * list), then a registration's connection is held; its end ends the
 * publication. What is published, and for how long, is the registrar's.
 *
 * @module
 */
import type { Socket } from "node:net";
import { ConductorError, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { createClientDir } from "./directories.ts";
import { readLines } from "./lines.ts";
import { decodeLine, encodeLine, parseRegister } from "./protocol.ts";
import type { Holder, Publication } from "./registrar/publication.ts";
import type { Registrar } from "./registrar/registrar.ts";

/** What every control connection shares. */
export interface ConnectionContext {
  registrar: Registrar;
  logger: Logger;
  socketsDir: string;
  /** The scheme browsers reach the gateway with, told to clients in replies. */
  scheme: "http" | "https";
  /** Time a new connection has to send its request, in ms. */
  configTimeoutMs: number;
  /** The gateway's version and domain patterns, told in the banner (an extension old clients ignore; `conductor check` prints them). */
  version: string;
  domains: () => string[];
  /** Connections that have not sent their request yet. */
  pending: number;
  /** Open connections. */
  open: Set<ControlConnection>;
}

const NEW = 0, REGISTERING = 1, LIVE = 2, CLOSED = 3;

/** A client connection on the control socket. */
export class ControlConnection implements Holder {
  readonly socket: Socket;
  readonly id: number;
  /** When the client connected (ms since the epoch). */
  readonly openedAt = Date.now();
  #ctx: ConnectionContext;
  #state = NEW;
  #directory: string | null = null;
  #publication: Publication | null = null;
  #timer: NodeJS.Timeout | null;
  #stopReading: (() => void) | null = null;
  /** What a live client sent after its registration (a goodbye, normally nothing), bounded. */
  #after = "";

  constructor(socket: Socket, id: number, ctx: ConnectionContext) {
    this.socket = socket;
    this.id = id;
    this.#ctx = ctx;
    ctx.open.add(this);
    ctx.pending++;
    this.#timer = setTimeout(() => {
      ctx.logger.info("control connection sent no config in time; closing", { conn: id, seconds: ctx.configTimeoutMs / 1000 });
      this.#refuse(new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot register: nothing came within ${ctx.configTimeoutMs / 1000} s of the banner`));
    }, ctx.configTimeoutMs);
    socket.on("error", (err) => {
      ctx.logger.debug("control connection error", { conn: id, error: err });
      this.close("the control connection failed");
    });
    socket.on("close", () => this.close("the control connection closed"));
    this.#stopReading = readLines(socket, {
      line: (line) => this.#onLine(line),
      end: () => this.close("the client closed the control connection"),
      overflow: () => this.#refuse(new ConductorError("CONDUCTOR_ERR_PROTOCOL", "Cannot parse control message: line too long")),
    });
    createClientDir(ctx.socketsDir).then((dir) => {
      if (this.#state === CLOSED) return ctx.registrar.discard(dir);
      this.#directory = dir;
      this.#reply({ status: "ok", directory: dir, version: ctx.version, domains: ctx.domains() });
      ctx.logger.debug("control connection", { conn: id, dir });
    }).catch((err) => {
      ctx.logger.error("cannot create client directory", { dir: ctx.socketsDir, error: err });
      this.#refuse(new ConductorError("CONDUCTOR_ERR_RUNTIME_DIR", `Cannot create a client directory in ${ctx.socketsDir}: ${messageOf(err)}`));
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

  /** True once the connection has ended. */
  get gone(): boolean {
    return this.#state === CLOSED;
  }

  /** Closes a silent connection to make room for another client, telling it why. */
  giveWay(): void {
    this.#ctx.logger.info("control socket full; closing a connection that sent no config", { conn: this.id, seconds: Math.round((Date.now() - this.openedAt) / 1000) });
    this.#refuse(new ConductorError("CONDUCTOR_ERR_BUSY", "Cannot register: the gateway's control socket is full and this connection had sent nothing yet; try again"));
  }

  /** {@inheritDoc Holder.replaced} */
  replaced(reason: string): void {
    this.#publication = null;
    this.close(reason);
  }

  /** {@inheritDoc Holder.closedIdle} */
  closedIdle(reason: string, seconds: number): void {
    this.#publication = null;
    this.#reply({ op: "close", reason, idle: seconds });
    this.close(reason, true);
  }

  /** {@inheritDoc Holder.activity} */
  activity(seconds: number): boolean {
    // A client that does not read gets no more until it does.
    if (this.socket.writableLength >= 1024) return false;
    this.#reply({ op: "activity", idle: seconds });
    return true;
  }

  /**
   * Ends the connection and, through the registrar, what it published:
   * `stopping` (the gateway stops) keeps it for the next start. `graceful`
   * lets a last reply reach the client. Safe to call twice.
   */
  close(reason: string, graceful = false, stopping = false): void {
    if (this.#state === CLOSED) return;
    const ctx = this.#ctx;
    if (this.#state !== LIVE) ctx.pending--;
    this.#state = CLOSED;
    this.#clearTimer();
    ctx.open.delete(this);
    if (graceful) this.socket.end();
    else this.socket.destroy();
    const publication = this.#publication;
    this.#publication = null;
    if (publication !== null) {
      ctx.registrar.end(publication, stopping ? "kept" : this.#saidGoodbye() ? "goodbye" : "dropped", reason);
    } else if (this.#directory !== null) {
      ctx.registrar.discard(this.#directory);
    }
  }

  #onLine(line: string): void {
    if (this.#state !== NEW) return;
    this.#state = REGISTERING;
    // The request is in: the time limit was for sending it, not for the gateway's work on it.
    this.#clearTimer();
    this.#handle(line).catch((err) => {
      this.#ctx.logger.info("registration refused", { conn: this.id, reason: messageOf(err), code: (err as ConductorError).code });
      this.#refuse(err);
    });
  }

  async #handle(line: string): Promise<void> {
    const ctx = this.#ctx;
    const message = decodeLine(line);
    const dir = this.#directory;
    if (dir === null) throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", "Cannot handle control message: it came before the banner");
    if (message.op === "list") {
      const { user, services } = await ctx.registrar.list(dir, ctx.scheme);
      this.#reply({ status: "ok", user, services });
      this.close("list answered", true);
      return;
    }
    if (message.op !== undefined && message.op !== "register") {
      throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot handle control message: unknown op ${JSON.stringify(message.op)}; this gateway knows register and list`);
    }
    const request = parseRegister(message);
    if (message.kind === "tcp") {
      const publication = await ctx.registrar.registerStream(dir, request, message.port, this);
      if (!this.#goLive(publication)) return;
      const { port } = publication.record;
      const address = ctx.registrar.streams!.address(port);
      this.#reply({ status: "ok", urls: [], scheme: ctx.scheme, activity: false, kind: "tcp", address, port });
      return;
    }
    if (message.kind !== undefined && message.kind !== "http") {
      throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot register: unknown kind ${JSON.stringify(message.kind)}; this gateway publishes http and tcp`);
    }
    const publication = await ctx.registrar.registerRoute(dir, request, this);
    if (!this.#goLive(publication)) return;
    // "activity": this gateway tells the client about browser activity (an extension; older clients ignore it).
    this.#reply({ status: "ok", urls: [...publication.route.hosts], scheme: ctx.scheme, activity: true });
  }

  /**
   * The registration is in: from now on only a goodbye and the end of the
   * connection matter. False when the client left meanwhile (what it
   * published is ended at once).
   */
  #goLive(publication: Publication): boolean {
    if (this.#state === CLOSED) {
      this.#ctx.registrar.end(publication, "goodbye", "the client went away while it registered");
      return false;
    }
    this.#publication = publication;
    this.#state = LIVE;
    this.#ctx.pending--;
    // Drop the line reader, keep a few bytes.
    this.#stopReading?.();
    this.#stopReading = null;
    this.socket.on("data", (chunk: Buffer) => {
      if (this.#after.length < 1024) this.#after += chunk.toString("utf8", 0, Math.min(chunk.length, 1024));
    });
    this.socket.once("end", () => this.close(this.#saidGoodbye() ? "the client said goodbye" : "the client closed the control connection"));
    return true;
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

  /** Answers an error (its reason, and its stable code: an extension old clients ignore) and closes. */
  #refuse(err: unknown): void {
    const code = err instanceof ConductorError ? err.code : "CONDUCTOR_ERR_INTERNAL";
    this.#reply({ status: "error", reason: messageOf(err), code });
    this.close(messageOf(err), true);
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
