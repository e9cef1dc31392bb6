/**
 * The client's side of one gateway: an SSH master (shared with the user's
 * other runs), the forward of the gateway's control socket, the forward of
 * the app socket into the directory the gateway assigns, and the
 * registration on the control connection, made again after each drop.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { readLines } from "../control/lines.ts";
import { decodeLine, DEFAULT_KEY, encodeLine, GOODBYE, parseBanner, parseReply } from "../control/protocol.ts";
import { ConductorError, ControlClosed, messageOf, RegistrationRefused } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { SAFE_PATH_RE } from "../ssh/destination.ts";
import { connectTimeoutOf, type SshSettings } from "../ssh/master.ts";
import { diagnoseRemoteSocket } from "../ssh/remote_socket.ts";
import { leaseMaster, type MasterLease } from "../ssh/shared_master.ts";
import type { EventSink } from "./events.ts";

/** Settings of a {@link GatewaySession}. */
export interface SessionOptions {
  ssh: SshSettings;
  /** The app's socket (absolute). */
  appSocket: string;
  /** Route key to ask for; null sends none (the gateway then uses "none"). */
  key: string | null;
  /** Registry name of the service, sent when it differs from the key. */
  name: string;
  /** Fields added to the `live` event's config (e.g. the TLS fingerprint). */
  liveExtra?: Record<string, string>;
  /** The token, for the `live` event. */
  token: string;
  /** Hex blake2b-512 of the token, sent to the gateway. */
  authHash: string;
  /** The user's private runtime directory (control sockets). */
  runtimeDir: string;
  /** Resolves when the app accepts connections. */
  appReady: () => Promise<void>;
  events: EventSink;
  logger: Logger;
  /** Time to wait for each line from the gateway, in ms. Default 30 s. */
  lineTimeoutMs?: number;
  /** Publish a TCP stream instead of a web app, on `port` if not null. */
  tcp?: { port: number | null };
  /** Receives what the gateway sends on a live registration (`{"op": "activity"}`, `{"op": "close"}`). */
  onControl?: (message: Record<string, unknown>) => void;
}

/** A live registration. */
export interface Registration {
  urls: string[];
  /** The scheme browsers use to reach the gateway. */
  scheme: "http" | "https";
  /** The gateway reports browser activity on this registration. */
  activity: boolean;
  /** A TCP stream's HOST:PORT and port. */
  address?: string;
  port?: number;
  /** Resolves when the control connection ends. */
  closed: Promise<void>;
}

/** A service as the gateway lists it (no token). */
export interface GatewayService {
  name: string;
  kind: string;
  key: string;
  urls: string[];
  scheme: string;
  created: string;
  /** Browsers' last use (ISO time), null before any; absent from older gateways. */
  lastActivity?: string | null;
  /** Seconds since the last use (or since it was published); absent from older gateways. */
  idle?: number;
  /** A TCP stream's HOST:PORT. */
  address?: string;
}

/** An open control connection, the gateway's banner and the directory it assigned. */
interface ControlChannel {
  socket: Socket;
  lines: LineQueue;
  banner: Record<string, unknown>;
  directory: string;
}

/** A session that only asks the gateway (list, check), registering nothing. */
export function querySession(options: Pick<SessionOptions, "ssh" | "runtimeDir" | "events" | "logger">): GatewaySession {
  return new GatewaySession({ ...options, appSocket: "", key: null, name: DEFAULT_KEY, token: "", authHash: "", appReady: async () => {} });
}

/** The connection to one gateway, registered again as often as needed. */
export class GatewaySession {
  readonly #o: SessionOptions;
  #lease: MasterLease | null = null;
  #runDir: string | null = null;
  #forwards = 0;
  #localControl: string | null = null;
  #remoteSocket: string | null = null;
  #control: Socket | null = null;
  #closed = false;

  constructor(options: SessionOptions) {
    this.#o = options;
  }

  /** Connects (or reuses the connection), forwards, registers; throws on failure ({@link RegistrationRefused} when the gateway said no). */
  async register(): Promise<Registration> {
    const o = this.#o;
    const master = await this.#master();
    // Only a ready app is registered; waiting here keeps the gateway's connection short.
    const { socket: control, lines, directory } = await this.#openControl(o.appReady);
    const remote = directory + "/socket";
    // The previous forward stays until the new registration is in: a gateway that took the old route over keeps serving it.
    const previous = this.#remoteSocket;
    await master.forwardRemote(remote, o.appSocket);
    this.#remoteSocket = remote;
    let registered = false;
    try {
      // sshd creates the socket with mode 0600 (StreamLocalBindMask 0177); the gateway connects through its group.
      const chmod = await master.exec(["chmod", "660", remote]);
      if (chmod.code !== 0) o.logger.warn("cannot make the forwarded socket group-accessible", { path: remote, error: chmod.stderr.trim() });

      const config: Record<string, string | number> = { auth: o.authHash };
      if (o.key !== null) config.key = o.key;
      if (o.name !== (o.key ?? DEFAULT_KEY)) config.name = o.name;
      if (o.tcp !== undefined) config.kind = "tcp";
      if (o.tcp?.port != null) config.port = o.tcp.port;
      control.write(encodeLine(config));
      const reply = parseReply(decodeLine(await lines.next("the reply to the registration")));
      if (reply.status === "error") throw new RegistrationRefused(reply.reason, reply.code);
      if (o.tcp !== undefined && reply.port === undefined) {
        throw new RegistrationRefused("Cannot publish a TCP service: this gateway answered with web addresses only (the original conductor, or an older conductor-server); publish it on a gateway with TCP streams");
      }
      registered = true;
      const stream = reply.port === undefined ? {} : { address: reply.address!, port: reply.port };
      o.events({ state: "live", config: { auth: o.token, key: o.key ?? "", urls: reply.urls, name: o.name, ...o.liveExtra, ...stream } });
      lines.follow((line) => {
        try {
          o.onControl?.(decodeLine(line));
        } catch (err) {
          o.logger.debug("ignoring a line from the gateway", { error: messageOf(err) });
        }
      });
      return { urls: reply.urls, scheme: reply.scheme, activity: reply.activity, closed: lines.closed, ...stream };
    } finally {
      if (this.#closed) {
        // close() ran meanwhile and cancelled what was current then: no forward of this run may outlive it.
        this.#remoteSocket = null;
        for (const forward of [previous, remote]) if (forward !== null) await this.#cancelForward(forward);
      } else if (registered) {
        if (previous !== null) await this.#cancelForward(previous);
      } else {
        // Keep the forward a taken-over route may still use.
        if (this.#remoteSocket === remote) this.#remoteSocket = previous;
        await this.#cancelForward(remote);
      }
    }
  }

  /** Asks the gateway for the live services of the user SSH logs in as (no tokens). */
  async query(): Promise<GatewayService[]> {
    const master = await this.#master();
    const { socket, lines, directory } = await this.#openControl(async () => {});
    try {
      // The gateway tells who asks by the owner of a file the user places in the directory.
      const proof = directory + "/whoami";
      const touch = await master.exec(["touch", proof]);
      if (touch.code !== 0) throw new ConductorError("CONDUCTOR_ERR_SSH", `Cannot create ${proof} on the gateway: ${touch.stderr.trim()}`);
      socket.write(encodeLine({ op: "list" }));
      const reply = decodeLine(await lines.next("the list of services"));
      if (reply.status !== "ok" || !Array.isArray(reply.services)) {
        throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot list services: ${typeof reply.reason === "string" ? reply.reason : "the gateway does not know the list request (an older conductor-server?)"}`);
      }
      return reply.services as GatewayService[];
    } finally {
      socket.destroy();
    }
  }

  /** Opens the control connection, reads the banner and closes again: how `conductor check` reaches the gateway. */
  async banner(): Promise<Record<string, unknown>> {
    const { socket, banner } = await this.#openControl(async () => {});
    socket.destroy();
    return banner;
  }

  /** Opens the control connection through the master and reads the banner (after `ready`). */
  async #openControl(ready: () => Promise<void>): Promise<ControlChannel> {
    const o = this.#o;
    const d = o.ssh.destination;
    const master = await this.#master();
    o.events({ state: "connect", user: d.user, host: d.host, port: d.port });
    if (this.#localControl === null) {
      const local = join(await this.#dir(), `control-${++this.#forwards}.sock`);
      await fs.rm(local, { force: true });
      await master.forwardLocal(local, d.controlPath);
      this.#localControl = local;
    }
    await ready();
    this.#check();
    const socket = await this.#connectControl(this.#localControl);
    const lines = lineQueue(socket, o.lineTimeoutMs ?? 30_000);
    let first: string;
    try {
      first = await lines.next("the banner");
    } catch (err) {
      if (!(err instanceof ControlClosed)) throw err;
      // OpenSSH tells the client only that sshd could not open the connection; the gateway is asked why.
      throw new ConductorError("CONDUCTOR_ERR_SSH",
        `Cannot reach the gateway's control socket ${d.controlPath} on ${d.host}: ${await diagnoseRemoteSocket(master, d.controlPath)}`);
    }
    const bannerJson = decodeLine(first);
    o.events({ state: "controlConnect", path: d.controlPath, banner: bannerJson as never });
    const banner = parseBanner(bannerJson);
    if (!SAFE_PATH_RE.test(banner.directory)) {
      throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot use the directory the gateway assigned, ${JSON.stringify(banner.directory)}: unexpected characters`);
    }
    return { socket, lines, banner: bannerJson, directory: banner.directory };
  }

  /** Forgets the control forward and the master after a drop, so the next attempt checks them again. */
  async reset(): Promise<void> {
    this.#control?.destroy();
    this.#control = null;
    if (this.#lease !== null && await this.#lease.master.check() === null) {
      // The master died: its forwards died with it.
      this.#localControl = null;
      this.#remoteSocket = null;
      await this.#lease.release().catch(() => {});
      this.#lease = null;
    }
  }

  /**
   * Ends the registration and stops using SSH; removes the run's files. With
   * `goodbye` the gateway removes the route at once; without it (the app
   * crashed and may be restarted) the route's hosts answer 503 for a while.
   * Safe to call twice.
   */
  async close(goodbye = true): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (goodbye) await this.#sayGoodbye();
    this.#control?.destroy();
    const lease = this.#lease;
    if (lease !== null) {
      await this.#dropRemoteForward();
      if (this.#localControl !== null) await lease.master.cancelLocal(this.#localControl, this.#o.ssh.destination.controlPath);
      await lease.release().catch((err) => this.#o.logger.warn("cannot stop the SSH master", { error: messageOf(err) }));
    }
    if (this.#runDir !== null) await fs.rm(this.#runDir, { recursive: true, force: true });
  }

  /**
   * Tells the gateway the registration ends on purpose, so that it removes
   * the route at once instead of holding its host for a reconnect; waits
   * briefly for the gateway to close. Older gateways ignore the line.
   */
  async #sayGoodbye(): Promise<void> {
    const control = this.#control;
    this.#control = null;
    if (control === null) return;
    if (!control.destroyed && control.writable) {
      const closed = new Promise<void>((resolve) => control.once("close", () => resolve()));
      control.end(GOODBYE);
      const timer = setTimeout(() => control.destroy(), 1000);
      await closed;
      clearTimeout(timer);
    }
    control.destroy();
  }

  async #master() {
    this.#check();
    if (this.#lease === null) {
      const { ssh, events } = this.#o;
      const d = ssh.destination;
      this.#lease = await leaseMaster(ssh, this.#o.runtimeDir,
        () => events({ state: "connecting", user: d.user, host: d.host, port: d.port, timeout: connectTimeoutOf(ssh) }));
      this.#o.logger.debug(this.#lease.reused ? "reusing SSH master" : "started SSH master", { control: this.#lease.master.controlPath });
      this.#check();
    }
    return this.#lease.master;
  }

  async #dir(): Promise<string> {
    if (this.#runDir === null) {
      this.#runDir = await fs.mkdtemp(join(this.#o.runtimeDir, `run-${process.pid}-`));
    }
    return this.#runDir;
  }

  async #dropRemoteForward(): Promise<void> {
    const remote = this.#remoteSocket;
    this.#remoteSocket = null;
    if (remote !== null) await this.#cancelForward(remote);
  }

  /** Cancels the forward of the app socket to `remote` on the gateway, if the master still runs. */
  async #cancelForward(remote: string): Promise<void> {
    if (this.#lease !== null) await this.#lease.master.cancelRemote(remote, this.#o.appSocket);
  }

  #connectControl(path: string): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once("connect", () => {
        socket.off("error", reject);
        socket.on("error", (err) => this.#o.logger.debug("control connection error", { error: err.message }));
        this.#control = socket;
        resolve(socket);
      });
      socket.once("error", (err) => reject(new ConductorError("CONDUCTOR_ERR_SSH", `Cannot reach the gateway's control socket through ${path}: ${err.message}`)));
    });
  }

  #check(): void {
    if (this.#closed) throw new ConductorError("CONDUCTOR_ERR_SSH", "Cannot register: the session is closing");
  }
}

/** Lines from a socket, awaited one at a time, and a promise of its end. */
interface LineQueue {
  /** The next line, within the time limit; `what` names it in errors. */
  next(what: string): Promise<string>;
  /** From now on, hands every line to `handler` as it comes, those already queued first. */
  follow(handler: (line: string) => void): void;
  closed: Promise<void>;
}

/** Lines from a socket, awaited one at a time with a time limit, and a promise of its end. */
function lineQueue(socket: Socket, timeoutMs: number): LineQueue {
  const lines: string[] = [];
  let follower: ((line: string) => void) | null = null;
  let ended = false;
  let wake: (() => void) | null = null;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => { resolveClosed = r; });
  const finish = (): void => {
    ended = true;
    resolveClosed();
    wake?.();
  };
  readLines(socket, {
    line: (line) => {
      if (follower !== null) return follower(line);
      lines.push(line);
      wake?.();
    },
    end: () => finish(),
    overflow: () => { socket.destroy(); finish(); },
  });
  socket.once("close", finish);
  return {
    closed,
    follow(handler) {
      follower = handler;
      for (const line of lines.splice(0)) handler(line);
    },
    async next(what) {
      const deadline = Date.now() + timeoutMs;
      while (lines.length === 0) {
        if (ended) throw new ControlClosed(what);
        const left = deadline - Date.now();
        if (left <= 0) {
          socket.destroy();
          throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot register: the gateway sent no ${what} within ${Math.round(timeoutMs / 1000)} s`);
        }
        await new Promise<void>((r) => {
          const timer = setTimeout(r, left);
          wake = () => { clearTimeout(timer); wake = null; r(); };
        });
      }
      return lines.shift()!;
    },
  };
}
