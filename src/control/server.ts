/**
 * The control socket `<runtime>/client`: each connection gets a fresh
 * directory in the banner, places its forwarded socket there, sends its
 * config, and holds a route for as long as the connection stays open.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import type { Logger } from "../lib/log.ts";
import { type PoolOptions, DEFAULT_POOL_OPTIONS } from "../gateway/pool.ts";
import type { RouteTable } from "../gateway/routes.ts";
import type { Stats } from "../gateway/stats.ts";
import type { GatewayState } from "../state/gateway_state.ts";
import { StreamManager } from "../streams/manager.ts";
import type { StreamSettings } from "../streams/settings.ts";
import { WaitingRoutes } from "./waiting.ts";
import { ControlConnection, type ControlContext } from "./connection.ts";
import { pickToGiveWay } from "./fairness.ts";
import { prepareSocketsDir, sweepClientDirs } from "./directories.ts";
import { encodeLine } from "./protocol.ts";
import { removeStaleSocket } from "../lib/socket_check.ts";

/** Settings of {@link startControlServer}. */
export interface ControlOptions {
  /** Runtime directory: holds the `client` socket and `sockets/`. */
  runtimeDir: string;
  routes: RouteTable;
  stats: Stats;
  logger: Logger;
  /** Most routes one user may hold. Default 64. */
  maxRoutesPerUser?: number;
  /** Time a new connection has to send its config, in ms. Default 30 s. */
  configTimeoutMs?: number;
  /** Most connections that have not registered yet. Default 1024. */
  maxPending?: number;
  /** Close a route after this long without browser activity, in ms (--max-idle). Default never. */
  maxIdleMs?: number;
  pool?: PoolOptions;
  /** Where routes are stored; the routes stored there are taken over at start. */
  state: GatewayState;
  /** The scheme browsers reach the gateway with. */
  scheme: "http" | "https";
  /** TCP streams through nginx; undefined publishes web apps only. */
  streams?: StreamSettings;
  /** Where the streams' state is kept (default: beside the users' files). */
  stateDir: string;
}

/** A running control server. */
export interface ControlServer {
  /** Path of the control socket. */
  readonly path: string;
  /** Open control connections. */
  readonly connections: number;
  /** The TCP streams, or null when the gateway publishes none. */
  readonly streams: StreamManager | null;
  /**
   * Stops accepting and ends every control connection. Routes and their
   * directories stay in the state for the next start to take over. Safe to
   * call twice.
   */
  close(): Promise<void>;
}

/** Name of the control socket in the runtime directory. */
export const CONTROL_SOCKET_NAME = "client";

/** Starts listening on `<runtimeDir>/client` (mode 0777). */
export async function startControlServer(options: ControlOptions): Promise<ControlServer> {
  const { routes, stats, logger } = options;
  const maxPerUser = options.maxRoutesPerUser ?? 64;
  const configTimeoutMs = options.configTimeoutMs ?? 30_000;
  const maxPending = options.maxPending ?? 1024;
  const poolOptions = options.pool ?? DEFAULT_POOL_OPTIONS;
  const socketsDir = await prepareSocketsDir(options.runtimeDir);
  const waiting = new WaitingRoutes({ routes, stats, logger, pool: poolOptions, state: options.state, socketsDir });
  await waiting.adopt();
  const streams = options.streams === undefined ? null
    : await StreamManager.open(options.streams, { runtimeDir: options.runtimeDir, stateDir: options.stateDir, socketsDir }, logger);
  const swept = await sweepClientDirs(socketsDir, new Set([...waiting.directories(), ...streams?.directories() ?? []]));
  if (swept.removed.length > 0) logger.info("removed stale client directories", { count: swept.removed.length, dir: socketsDir });
  for (const { path, error } of swept.failed) {
    logger.warn("cannot remove a stale client directory; it is locked, remove it as root", { dir: path, error });
  }
  const path = join(options.runtimeDir, CONTROL_SOCKET_NAME);
  await removeStaleSocket(path, "--runtime-dir");

  const ctx: ControlContext = {
    routes,
    stats,
    logger,
    pool: poolOptions,
    state: options.state,
    scheme: options.scheme,
    socketsDir,
    maxRoutesPerUser: maxPerUser,
    configTimeoutMs,
    maxIdleMs: options.maxIdleMs ?? 0,
    idleClosed: new Map(),
    pending: 0,
    open: new Set(),
    removals: new Set(),
    streams,
  };
  let nextId = 1;

  const server: Server = createServer((socket) => {
    const room = ctx.pending >= maxPending ? pickToGiveWay(silentConnections(ctx.open), Date.now()) : null;
    room?.giveWay();
    if (ctx.pending >= maxPending) {
      logger.warn("too many unregistered control connections; refusing one", { limit: maxPending });
      socket.on("error", () => socket.destroy());
      socket.end(encodeLine({ status: "error", reason: "Cannot accept connection: the gateway is busy; try again shortly" }));
      return;
    }
    new ControlConnection(socket, nextId++, ctx);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  await fs.chmod(path, 0o777);
  server.on("error", (err) => logger.error("control socket error", { path, error: err }));
  logger.info("control socket listening", { path });

  let closing: Promise<void> | null = null;
  return {
    path,
    get connections() {
      return ctx.open.size;
    },
    streams,
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const conn of ctx.open) conn.close("the gateway is stopping", "keep");
        });
        waiting.close();
        await Promise.all(ctx.removals);
        await streams?.close();
        await options.state.flush();
        await fs.rm(path, { force: true });
      })();
      return closing;
    },
  };
}

/** The connections that have sent nothing yet, in order of connection. */
function* silentConnections(open: Iterable<ControlConnection>): Iterable<ControlConnection> {
  for (const conn of open) if (conn.silent) yield conn;
}
