/**
 * The control socket `<runtime>/client`: each connection gets a fresh
 * directory in the banner, places its forwarded socket there, sends its
 * config, and holds what it published for as long as the connection stays
 * open. Connections that have not sent their config are capped; when the
 * cap is reached, the one that fairness.ts picks gives way to a newcomer.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import type { Logger } from "../lib/log.ts";
import { removeStaleSocket } from "../lib/socket_check.ts";
import { ControlConnection, type ConnectionContext } from "./connection.ts";
import { pickToGiveWay } from "./fairness.ts";
import { encodeLine } from "./protocol.ts";
import type { Registrar } from "./registrar/registrar.ts";

/** Settings of {@link startControlServer}. */
export interface ControlOptions {
  /** Runtime directory: holds the `client` socket. */
  runtimeDir: string;
  /** The sockets directory, where client directories are made. */
  socketsDir: string;
  registrar: Registrar;
  logger: Logger;
  /** Time a new connection has to send its config, in ms. Default 30 s. */
  configTimeoutMs?: number;
  /** Most connections that have not registered yet. Default 1024. */
  maxPending?: number;
  /** The scheme browsers reach the gateway with. */
  scheme: "http" | "https";
  /** The gateway's version, told in the banner. */
  version: string;
  /** The domain patterns routes are published under, told in the banner. */
  domains: () => string[];
}

/** A running control server. */
export interface ControlServer {
  /** Path of the control socket. */
  readonly path: string;
  /** Open control connections. */
  readonly connections: number;
  /**
   * Stops accepting and ends every control connection, refused and silent
   * ones included. What they published stays in the state for the next
   * start to take over. Safe to call twice.
   */
  close(): Promise<void>;
}

/** Name of the control socket in the runtime directory. */
export const CONTROL_SOCKET_NAME = "client";

/** Starts listening on `<runtimeDir>/client` (mode 0777). */
export async function startControlServer(options: ControlOptions): Promise<ControlServer> {
  const { logger } = options;
  const maxPending = options.maxPending ?? 1024;
  const path = join(options.runtimeDir, CONTROL_SOCKET_NAME);
  await removeStaleSocket(path, "--runtime-dir");

  const ctx: ConnectionContext = {
    registrar: options.registrar,
    logger,
    socketsDir: options.socketsDir,
    scheme: options.scheme,
    version: options.version,
    domains: options.domains,
    configTimeoutMs: options.configTimeoutMs ?? 30_000,
    pending: 0,
    open: new Set(),
  };
  /** Every accepted socket, refused ones included, so that a stop can end them all. */
  const sockets = new Set<Socket>();
  let nextId = 1;

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const room = ctx.pending >= maxPending ? pickToGiveWay(silentConnections(ctx.open), Date.now()) : null;
    room?.giveWay();
    if (ctx.pending >= maxPending) {
      logger.warn("too many unregistered control connections; refusing one", { limit: maxPending });
      socket.on("error", () => socket.destroy());
      socket.end(encodeLine({ status: "error", reason: "Cannot accept connection: the gateway is busy; try again shortly", code: "CONDUCTOR_ERR_BUSY" }));
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
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const conn of [...ctx.open]) conn.close("the gateway is stopping", false, true);
        // Refused connections wait for their client to read the refusal: nobody may hold the stop.
        for (const socket of sockets) socket.destroy();
        await closed;
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
