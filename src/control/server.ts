/**
 * The control socket `<runtime>/client`: each connection gets a fresh
 * directory in the banner, places its forwarded socket there, sends its
 * config, and holds a route for as long as the connection stays open.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { ConductorError, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { lookupAccount } from "../lib/users.ts";
import { RoutePool, type PoolOptions, DEFAULT_POOL_OPTIONS } from "../gateway/pool.ts";
import type { Route, RouteTable } from "../gateway/routes.ts";
import type { Stats } from "../gateway/stats.ts";
import { checkClientDirContents, createClientDir, lockClientDir, prepareSocketsDir, removeClientDir, SOCKET_NAME, sweepClientDirs } from "./directories.ts";
import { checkHostOwnership, checkUserName } from "./naming.ts";
import { readLines } from "./lines.ts";
import { decodeLine, encodeLine, parseRegister } from "./protocol.ts";
import { inspectRouteSocket, probeSocket, removeStaleSocket } from "./socket_check.ts";

/** Settings of {@link startControlServer}. */
export interface ControlOptions {
  /** Runtime directory: holds the `client` socket and `sockets/`. */
  runtimeDir: string;
  routes: RouteTable;
  stats: Stats;
  logger: Logger;
  /** Most routes one user may hold. Default 64. */
  maxRoutesPerUser?: number;
  /** Time a new connection has to send its config, in ms. Default 60 s. */
  configTimeoutMs?: number;
  /** Most connections that have not registered yet. Default 1024. */
  maxPending?: number;
  pool?: PoolOptions;
}

/** A running control server. */
export interface ControlServer {
  /** Path of the control socket. */
  readonly path: string;
  /** Open control connections. */
  readonly connections: number;
  /** Stops accepting, ends every registration and removes its directory. Safe to call twice. */
  close(): Promise<void>;
}

/** Name of the control socket in the runtime directory. */
export const CONTROL_SOCKET_NAME = "client";

/** Starts listening on `<runtimeDir>/client` (mode 0777). */
export async function startControlServer(options: ControlOptions): Promise<ControlServer> {
  const { routes, stats, logger } = options;
  const maxPerUser = options.maxRoutesPerUser ?? 64;
  const configTimeoutMs = options.configTimeoutMs ?? 60_000;
  const maxPending = options.maxPending ?? 1024;
  const poolOptions = options.pool ?? DEFAULT_POOL_OPTIONS;
  const socketsDir = await prepareSocketsDir(options.runtimeDir);
  const swept = await sweepClientDirs(socketsDir, new Set());
  if (swept.removed.length > 0) logger.info("removed stale client directories", { count: swept.removed.length, dir: socketsDir });
  for (const { path, error } of swept.failed) {
    logger.warn("cannot remove a stale client directory; it is locked, remove it as root", { dir: path, error });
  }
  const path = join(options.runtimeDir, CONTROL_SOCKET_NAME);
  await removeStaleSocket(path, "--runtime-dir");

  const open = new Set<Socket>();
  const removals = new Set<Promise<void>>();
  let pending = 0;
  let nextId = 1;

  const server: Server = createServer((socket) => {
    const id = nextId++;
    if (pending >= maxPending) {
      logger.warn("too many unregistered control connections; refusing one", { limit: maxPending });
      socket.on("error", () => socket.destroy());
      socket.end(encodeLine({ status: "error", reason: "Cannot accept connection: the gateway is busy; try again shortly" }));
      return;
    }
    open.add(socket);
    pending++;
    let counted = true;
    const settle = (): void => { if (counted) { counted = false; pending--; } };
    let directory: string | null = null;
    let route: Route | null = null;
    let state: "new" | "registering" | "live" | "closed" = "new";
    const log = logger.verbose ? (msg: string, fields: Record<string, unknown> = {}) => logger.debug(msg, { conn: id, ...fields }) : () => {};

    const timer = setTimeout(() => {
      logger.info("control connection sent no config in time; closing", { conn: id, seconds: configTimeoutMs / 1000 });
      close();
    }, configTimeoutMs);

    /** Ends the connection; `graceful` lets a last reply reach the client first. */
    const close = (reason?: string, graceful = false): void => {
      if (state === "closed") return;
      state = "closed";
      clearTimeout(timer);
      settle();
      open.delete(socket);
      if (route !== null) {
        if (routes.remove(route)) logger.info("route removed", { key: route.key, user: route.user, reason: reason ?? "client disconnected" });
        route.pool.destroy();
        route = null;
      }
      if (graceful) socket.end();
      else socket.destroy();
      if (directory !== null) {
        const dir = directory;
        const removal = removeClientDir(dir)
          .catch((err) => logger.warn("cannot remove client directory; it is locked, remove it as root", { dir, error: err }))
          .finally(() => removals.delete(removal));
        removals.add(removal);
      }
    };
    socket.on("error", (err) => { log("control connection error", { error: err }); close(); });
    socket.on("close", () => close());

    const reply = (message: Parameters<typeof encodeLine>[0]): void => {
      if (!socket.destroyed) socket.write(encodeLine(message));
    };

    const register = async (line: string): Promise<void> => {
      const message = decodeLine(line);
      if (message.op !== undefined && message.op !== "register") {
        throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", `Cannot handle control message: unknown op ${JSON.stringify(message.op)} before registration`);
      }
      const request = parseRegister(message);
      const dir = directory;
      if (dir === null) throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", "Cannot register route: config sent before the banner");
      // Lock first: from here on nobody but the gateway can swap the socket.
      await lockClientDir(dir);
      await checkClientDirContents(dir);
      const socketPath = join(dir, SOCKET_NAME);
      const facts = await inspectRouteSocket(socketPath);
      const account = await lookupAccount(facts.uid);
      const user = account.name.toLowerCase();
      checkUserName(user);
      await checkHostOwnership(request.key, user, routes.patterns);
      await probeSocket(socketPath);
      if (state === "closed") throw new ConductorError("CONDUCTOR_ERR_PROTOCOL", "Cannot register route: the client went away");
      const authHash = Buffer.from(request.auth, "hex");
      const existing = routes.get(user, request.key);
      if (existing !== undefined) {
        if (!existing.authHash.equals(authHash)) {
          throw new ConductorError("CONDUCTOR_ERR_KEY_TAKEN",
            `Cannot register route: user ${user} already has a live route with key '${request.key}' from another conductor run; stop that one, or use another key (-k), or run with the same CONDUCTOR_TOKEN to take it over`);
        }
      } else if (routes.countOf(user) >= maxPerUser) {
        throw new ConductorError("CONDUCTOR_ERR_ROUTE_LIMIT",
          `Cannot register route: user ${user} already holds ${maxPerUser} routes, the limit of this gateway; stop some (conductor list) first`);
      }
      const newRoute: Route = {
        key: request.key,
        user,
        uid: facts.uid,
        socketPath,
        directory: dir,
        authHash,
        hosts: routes.hostsOf(request.key, user),
        created: Date.now(),
        pool: new RoutePool(socketPath, stats, poolOptions),
        release: (why) => close(why),
      };
      // The same token is the same run coming back after a drop: it replaces the old route at once.
      routes.add(newRoute, existing);
      if (existing !== undefined) {
        existing.release("replaced by a new registration of the same run");
        logger.info("route replaced", { key: request.key, user });
      }
      route = newRoute;
      state = "live";
      clearTimeout(timer);
      settle();
      reply({ status: "ok", urls: [...newRoute.hosts] });
      logger.info("route added", { key: newRoute.key, user, uid: facts.uid, hosts: newRoute.hosts });
    };

    readLines(socket, {
      line: (line) => {
        if (state === "new") {
          state = "registering";
          register(line).catch((err) => {
            const reason = messageOf(err);
            logger.info("registration refused", { conn: id, reason, code: (err as ConductorError).code });
            reply({ status: "error", reason });
            close(reason, true);
          });
        } else {
          log("ignoring control line after registration", { bytes: line.length });
        }
      },
      end: () => close(),
      overflow: () => {
        reply({ status: "error", reason: "Cannot parse control message: line too long" });
        close("line too long", true);
      },
    });

    createClientDir(socketsDir).then((dir) => {
      if (state === "closed") return removeClientDir(dir);
      directory = dir;
      reply({ status: "ok", directory: dir });
      log("control connection", { dir });
    }).catch((err) => {
      logger.error("cannot create client directory", { dir: socketsDir, error: err });
      reply({ status: "error", reason: `Cannot create a client directory in ${socketsDir}: ${messageOf(err)}` });
      close();
    });
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
      return open.size;
    },
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const socket of open) socket.destroy();
        });
        await Promise.all(removals);
        await fs.rm(path, { force: true });
      })();
      return closing;
    },
  };
}
