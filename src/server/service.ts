/**
 * conductor-server as a whole (the composition root): the control socket, the route table and the
 * HTTP(S) front end, started and stopped together.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { userInfo } from "node:os";
import { dirname, resolve } from "node:path";
import type { AddressInfo, Server } from "node:net";
import type { Server as TlsServer } from "node:tls";
import { prepareSocketsDir } from "../control/directories.ts";
import { Registrar } from "../control/registrar/registrar.ts";
import type { RateSettings } from "../control/registrar/rate.ts";
import { startControlServer, type ControlServer } from "../control/server.ts";
import { removeStaleSocket } from "../lib/socket_check.ts";
import { activatedAddress } from "./socket_activation.ts";
import { ConductorError, isErrno, messageOf } from "../lib/errors.ts";
import { lookupGroupId } from "../lib/users.ts";
import type { Logger } from "../lib/log.ts";
import { VERSION } from "../lib/version.ts";
import { parseDomainPattern } from "../gateway/domains.ts";
import { DEFAULT_CONNECTION_CAPS, fitToDescriptors, type ConnectionCaps } from "../gateway/connection_limits.ts";
import { openFilesLimit } from "../lib/open_files.ts";
import { createFrontEnd, type FrontTimeouts } from "../gateway/front.ts";
import { DEFAULT_POOL_OPTIONS, type PoolOptions } from "../gateway/pool.ts";
import { RouteTable } from "../gateway/routes.ts";
import { createStats, type Stats } from "../gateway/stats.ts";
import { loadTls, type TlsFiles } from "../gateway/tls.ts";
import { GatewayState } from "../state/gateway_state.ts";
import type { StreamSettings } from "../streams/settings.ts";
import { startAdminApi, type AdminApi, type AdminOptions } from "../streams/admin.ts";

/** Settings of {@link startGateway}; the command line maps onto these. */
export interface GatewayOptions {
  /** TCP port of the front end (ignored with `sock`). */
  port: number;
  /** Address to bind the TCP port to; all addresses when undefined. */
  bind?: string;
  /** Listen on this UNIX socket (mode 0660) instead of a TCP port. */
  sock?: string;
  /** Group (name or gid) given the `sock` socket: the reverse proxy's. */
  sockGroup?: string;
  /** Listen on this descriptor, a socket systemd opened (socket activation), instead of `port` or `sock`. */
  listenFd?: number;
  runtimeDir: string;
  /** Durable state (users' routes), kept across restarts. */
  stateDir: string;
  /** Domain patterns, e.g. `{key}-{user}.example.org`; empty means `{key}-{user}.localhost:PORT`. */
  domains: string[];
  tls?: TlsFiles;
  /** Keep X-Forwarded-* from requests. */
  trustForwarded: boolean;
  maxRoutesPerUser?: number;
  /** Time a control connection has to send its config, in ms. */
  configTimeoutMs?: number;
  /** Most control connections waiting for their config. */
  maxPending?: number;
  /** Close a route after this long without browser activity, in ms (--max-idle); undefined for never. */
  maxIdleMs?: number;
  /** Each user's registrations at once and per minute (--max-registrations-per-minute). */
  registrationRate?: RateSettings;
  frontTimeouts?: FrontTimeouts;
  /** Largest request body accepted, in bytes (413 beyond); 0 for no limit. */
  maxRequestBody?: number;
  /** Caps on browser connections (--max-connections, --max-connections-per-address). */
  connectionCaps?: ConnectionCaps;
  pool?: PoolOptions;
  /** How long close() lets responses in progress finish before it cuts them, in ms (default 5 s). */
  shutdownGraceMs?: number;
  /** TCP streams through nginx; undefined publishes web apps only. */
  streams?: StreamSettings;
  /** The streams' admin API (needs `streams`). */
  admin?: AdminOptions;
}

/** A running gateway. */
export interface Gateway {
  readonly routes: RouteTable;
  readonly stats: Stats;
  readonly control: ControlServer;
  /** The TCP port or UNIX socket path the front end listens on, or the descriptor of a UNIX socket systemd passed. */
  readonly address: { port: number } | { path: string } | { fd: number };
  /** Re-reads the TLS files and uses them for new connections; open ones are kept. */
  reloadTls(): Promise<void>;
  /** Stops everything; live routes stay in the state for the next start. Safe to call twice. */
  close(): Promise<void>;
}

/** Starts conductor-server's control socket and front end. */
export async function startGateway(options: GatewayOptions, logger: Logger): Promise<Gateway> {
  const patterns = options.domains.map(parseDomainPattern);
  const routes = new RouteTable(patterns);
  const stats = createStats();
  const startedAt = Date.now();
  const tls = options.tls === undefined ? undefined : {
    ...await loadTls(options.tls),
    requestCert: options.tls.allowedClientsFile !== undefined,
  };
  let control: ControlServer | null = null;
  let admin: AdminApi | null = null;
  const front = createFrontEnd({
    routes,
    stats,
    logger,
    version: VERSION,
    gauges: () => ({ routesTotal: routes.size, controlConnections: control?.connections ?? 0, appWaiting: waitingForApps(routes), startedAt }),
    tls,
    trustForwarded: options.trustForwarded,
    timeouts: options.frontTimeouts,
    maxRequestBody: options.maxRequestBody,
    connectionCaps: connectionCapsFor(options.connectionCaps ?? DEFAULT_CONNECTION_CAPS, logger),
  });
  const server = front.server;
  // Browsers get in once the routes of the previous run are taken over: until then they wait in the socket's queue
  // (socket activation) or are refused, rather than told "just started" (503). Only a port the kernel picks (-p 0) is
  // bound first: nobody can connect to it before it is known.
  const plan = await planFront(options);
  let address = plan.address ?? await plan.listen(server);
  if (patterns.length === 0) {
    routes.setPatterns([parseDomainPattern("port" in address ? `{key}-{user}.localhost:${address.port}` : "{key}-{user}.localhost")]);
  }
  const state = new GatewayState(options.stateDir, logger);
  let registrar: Registrar | null = null;
  try {
    await state.prepare();
    const socketsDir = await prepareSocketsDir(options.runtimeDir);
    registrar = await Registrar.open({
      routes,
      stats,
      logger,
      pool: options.pool ?? DEFAULT_POOL_OPTIONS,
      state,
      socketsDir,
      runtimeDir: options.runtimeDir,
      stateDir: options.stateDir,
      maxRoutesPerUser: options.maxRoutesPerUser ?? 64,
      maxIdleMs: options.maxIdleMs ?? 0,
      rate: options.registrationRate,
      streams: options.streams,
    });
    control = await startControlServer({
      registrar,
      socketsDir,
      // Behind a reverse proxy on a UNIX socket, browsers are expected to come over TLS.
      scheme: tls !== undefined || !("port" in address) ? "https" : "http",
      runtimeDir: options.runtimeDir,
      logger,
      configTimeoutMs: options.configTimeoutMs,
      maxPending: options.maxPending,
      version: VERSION,
      domains: () => routes.patterns.map((p) => p.source),
    });
    if (options.admin !== undefined && registrar.streams !== null) admin = await startAdminApi(registrar.streams, options.admin, logger);
    await warnIfUnreachable(control.path, logger);
    if (plan.address !== null) address = await plan.listen(server);
  } catch (err) {
    await admin?.close();
    await control?.close();
    await registrar?.close(true);
    if (server.listening) {
      await new Promise((resolve) => server.close(resolve));
      if ("path" in address) await fs.rm(address.path, { force: true });
    }
    throw err;
  }
  server.on("error", acceptFailureLogger(logger));
  const openRegistrar = registrar;
  const controlServer = control;
  front.ready();
  logger.info("gateway listening", { ...address, tls: tls !== undefined, clientCertificates: tls?.requestCert ?? false, domains: routes.patterns.map((p) => p.source) });

  let closing: Promise<void> | null = null;
  return {
    routes,
    stats,
    control: controlServer,
    address,
    async reloadTls() {
      if (options.tls === undefined) return;
      const fresh = await loadTls(options.tls);
      (server as unknown as TlsServer).setSecureContext(fresh);
      logger.info("TLS files reloaded", { cert: options.tls.certFile });
    },
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        front.closeIdle();
        await admin?.close();
        await controlServer.close();
        await openRegistrar.close();
        const grace = setTimeout(() => front.destroyAll(), options.shutdownGraceMs ?? 5_000);
        await stopped;
        clearTimeout(grace);
        front.destroyAll();
        if ("path" in address) await fs.rm(address.path, { force: true });
      })();
      return closing;
    },
  };
}

/** How the front end listens, checked before the takeover; `address` is null where only listening tells it (-p 0). */
interface FrontPlan {
  address: Gateway["address"] | null;
  listen(server: Server): Promise<Gateway["address"]>;
}

async function planFront(options: GatewayOptions): Promise<FrontPlan> {
  const fd = options.listenFd;
  if (fd !== undefined) return { address: await activatedAddress(fd), listen: (server) => listenOnFd(server, fd) };
  if (options.sock !== undefined) {
    const path = options.sock;
    const group = options.sockGroup;
    const gid = group === undefined ? null : await proxyGroupId(group);
    const dir = await fs.stat(dirname(path)).catch(() => null);
    if (dir === null || !dir.isDirectory()) {
      throw new ConductorError("CONDUCTOR_ERR_USAGE",
        `Cannot listen on --sock ${path}: ${dirname(path)} is not a directory; create it (RuntimeDirectory= in a systemd unit) or choose another path`);
    }
    return { address: { path }, listen: (server) => listenOnSock(server, { path, gid, group, runtimeDir: options.runtimeDir }) };
  }
  const { port, bind } = options;
  return { address: port === 0 ? null : { port }, listen: (server) => listenOnPort(server, port, bind) };
}

/** Where {@link listenOnSock} listens: `path`, given group `gid` (`group`, the reverse proxy's). */
interface SockPlan {
  path: string;
  gid: number | null;
  group?: string;
  runtimeDir: string;
}

/** Listens on `path` (mode 0660, group `gid`); a stale socket file there is replaced. */
async function listenOnSock(server: Server, { path, gid, group, runtimeDir }: SockPlan): Promise<Gateway["address"]> {
  await removeStaleSocket(path, "--sock");
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error): void => reject(new ConductorError("CONDUCTOR_ERR_USAGE",
      `Cannot listen on --sock ${path}: ${messageOf(err)}${isErrno(err, "EACCES") ? sockDirHint(path, runtimeDir) : ""}`, { cause: err }));
    server.once("error", fail);
    server.listen(path, () => { server.off("error", fail); resolve(); });
  });
  try {
    await fs.chmod(path, 0o660);
    if (gid !== null) await fs.chown(path, -1, gid);
  } catch (err) {
    server.close();
    const hint = isErrno(err, "EPERM") ? `; the gateway's user must be a member of group ${group} (SupplementaryGroups=${group} in its systemd unit)` : "";
    throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot make ${path} reachable for the reverse proxy: ${messageOf(err)}${hint}`, { cause: err });
  }
  return { path };
}

async function listenOnPort(server: Server, port: number, bind: string | undefined): Promise<Gateway["address"]> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      const hint = err.code === "EADDRINUSE" ? "; another program listens there: stop it or choose another --port"
        : err.code === "EACCES" ? "; ports below 1024 need privileges: use a higher --port behind a reverse proxy" : "";
      reject(new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot listen on port ${port}: ${messageOf(err)}${hint}`, { cause: err }));
    });
    server.listen({ port, host: bind }, () => resolve());
  });
  return { port: (server.address() as AddressInfo).port };
}

/** For a --sock path the gateway may not create (EACCES, as without systemd): which directory to make, owned by whom. */
function sockDirHint(path: string, runtimeDir: string): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = String(process.geteuid?.());
  }
  const dir = dirname(path);
  return `; the gateway's user ${user} may not create files in ${dir}: create a directory it owns for the socket ` +
    `(install -d -m 0755 -o ${user} ${dir}/conductor, then --sock ${dir}/conductor/http.sock), or put the socket in its runtime directory (--sock ${runtimeDir}/http.sock)`;
}

/**
 * Warns when sshd, which connects to the control socket as each user, could
 * not reach it: the runtime directory or one above it that others may not enter.
 */
async function warnIfUnreachable(controlPath: string, logger: Logger): Promise<void> {
  for (let dir = dirname(resolve(controlPath)); ; dir = dirname(dir)) {
    const st = await fs.stat(dir).catch(() => null);
    if (st !== null && (st.mode & 0o001) === 0) {
      const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
      logger.warn(`Users cannot reach the control socket ${controlPath}: sshd connects to it as each user, and ${dir} is mode ${mode} (owner uid ${st.uid}), which others may not enter; make it mode 0755 (chmod 755 ${dir})`,
        { dir, mode, uid: st.uid });
      return;
    }
    if (dir === "/") return;
  }
}

/** Requests waiting for a connection to their app, over every route. */
function waitingForApps(routes: RouteTable): number {
  let n = 0;
  for (const route of routes.all()) n += route.pool.waitingCount;
  return n;
}

/** The caps, lowered (with a warning) to what the limit of open files allows. */
function connectionCapsFor(caps: ConnectionCaps, logger: Logger): ConnectionCaps {
  const openFiles = openFilesLimit();
  const fitted = fitToDescriptors(caps, openFiles);
  if (fitted !== caps) {
    logger.warn(`The limit of open files (${openFiles}) allows about ${fitted.maxTotal} browser connections: --max-connections ${caps.maxTotal || "0 (no cap)"} is lowered to ${fitted.maxTotal}; raise LimitNOFILE= in the unit (or ulimit -n) to serve more`,
      { openFiles, maxConnections: fitted.maxTotal });
  }
  return fitted;
}

/**
 * Logs a failed accept (out of descriptors, EMFILE: the kernel queue keeps the
 * connection, or libuv drops it) at most once every 10 s, with what to do;
 * the server keeps listening.
 */
function acceptFailureLogger(logger: Logger): (err: NodeJS.ErrnoException) => void {
  let quietUntil = 0;
  return (err) => {
    if (Date.now() < quietUntil) return;
    quietUntil = Date.now() + 10_000;
    const hint = err.code === "EMFILE" || err.code === "ENFILE"
      ? "; raise the limit of open files (LimitNOFILE= in the unit, ulimit -n) or lower --max-connections" : "";
    logger.error(`Cannot accept a browser connection: ${messageOf(err)}${hint}`, { code: err.code });
  };
}

/** Listens on a socket systemd passed; its file, if any, stays systemd's. */
async function listenOnFd(server: Server, fd: number): Promise<Gateway["address"]> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(new ConductorError("CONDUCTOR_ERR_USAGE",
      `Cannot listen on the socket systemd passed (descriptor ${fd}): ${messageOf(err)}; check ListenStream= in the .socket unit`, { cause: err })));
    server.listen({ fd }, () => resolve());
  });
  const bound = server.address();
  return bound !== null && typeof bound === "object" ? { port: bound.port } : { fd };
}

/** The gid of `--sock-group`, which must not be the gateway's own group: that one reaches every app socket. */
async function proxyGroupId(group: string): Promise<number> {
  const gid = await lookupGroupId(group);
  if (gid === process.getegid?.()) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE",
      `Cannot give the front end's socket to group ${group}: it is the gateway's own group, whose members can connect to every app socket; give the reverse proxy a group of its own (such as www-data)`);
  }
  return gid;
}
