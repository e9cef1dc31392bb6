/**
 * The HTTP(S) front end: accepts browser connections (TCP, TLS or a UNIX
 * socket), routes each request by Host, answers `/_conductor/*`, checks the
 * `authorization` cookie, and hands authorized requests and websocket
 * upgrades to the proxy.
 *
 * @module
 */
import { createServer as createNetServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type SecureContextOptions } from "node:tls";
import type { Logger } from "../lib/log.ts";
import { AUTH_PATH, authorized, serveAuthLink, type AuthLinkContext } from "./auth.ts";
import { BrowserConnection, ConnectionSet, type RequestHandler } from "./connection.ts";
import { ConnectionLimiter, DEFAULT_CONNECTION_CAPS, type ConnectionCaps } from "./connection_limits.ts";
import { buildForwardHead, forwardedFacts } from "./forward_head.ts";
import { forwardRequest, type ProxyContext } from "./proxy.ts";
import { hasBody, type RequestHead } from "./request_head.ts";
import type { RouteTable } from "./routes.ts";
import { metricsText, statusJson, type Gauges, type Stats } from "./stats.ts";
import { noteUse } from "./activity.ts";
import { forwardUpgrade } from "./upgrade.ts";

/**
 * Bytes a browser socket queues before the app is paused: one read from the
 * app (64 KiB at most), so that a large body is relayed a read at a time
 * rather than paused and resumed within each read. Plain listeners only: a
 * TLS server does not pass it on to the TLS sockets it makes, which keep
 * Node's default.
 */
const SOCKET_BUFFER = 64 * 1024;

/** Time limits of the browser side, in ms. */
export interface FrontTimeouts {
  /** Longest time to receive a request head (408 after it). Default 30 s. */
  headers: number;
  /** Longest idle time of a keep-alive connection between requests. Default 65 s. */
  keepAlive: number;
  /** Longest silence while a request body arrives (then the connection is closed). Default 60 s. */
  body: number;
}

/** Default browser-side time limits. */
export const DEFAULT_FRONT_TIMEOUTS: FrontTimeouts = { headers: 30_000, keepAlive: 65_000, body: 60_000 };

/** Settings of {@link createFrontEnd}. */
export interface FrontEndOptions {
  routes: RouteTable;
  stats: Stats;
  logger: Logger;
  /** Figures for the status page, read when it is requested (the front end adds its own). */
  gauges: () => Omit<Gauges, "connectionActive">;
  version: string;
  /** TLS context; with `requestCert` the client must present an allowed certificate. */
  tls?: SecureContextOptions & { requestCert: boolean };
  /** Keep X-Forwarded-* from the request (true when a reverse proxy in front talks to a UNIX socket). */
  trustForwarded: boolean;
  timeouts?: FrontTimeouts;
  /** Largest request body accepted, in bytes (413 beyond); 0 or undefined for no limit. */
  maxRequestBody?: number;
  /** Caps on open connections; default {@link DEFAULT_CONNECTION_CAPS}. */
  connectionCaps?: ConnectionCaps;
}

/** The front end: a listening server and its connections. */
export interface FrontEnd {
  /** The net or TLS server (not yet listening). */
  server: Server;
  /** Open browser connections. */
  readonly connections: number;
  /** Closes idle connections now, busy ones after their response. */
  closeIdle(): void;
  /** Ends every connection now. */
  destroyAll(): void;
  /**
   * Marks the routes of the previous run as taken over: until then a host
   * without a route answers 503 (try again), as its route may still come.
   */
  ready(): void;
}

/** Creates the (not yet listening) HTTP or HTTPS front end of the gateway. */
export function createFrontEnd(options: FrontEndOptions): FrontEnd {
  const { routes, stats, logger, tls } = options;
  const timeouts = options.timeouts ?? DEFAULT_FRONT_TIMEOUTS;
  const ctx: ProxyContext = { stats, logger };
  const secure = tls !== undefined;
  const connections = new ConnectionSet(timeouts, options.maxRequestBody ?? 0, () => { stats.badRequest++; });
  const gauges = (): Gauges => ({ ...options.gauges(), connectionActive: connections.size });
  const limiter = new ConnectionLimiter(options.connectionCaps ?? DEFAULT_CONNECTION_CAPS);
  let started = false;

  const handler: RequestHandler = {
    onRefused(status, reason, dispatched) {
      if (!dispatched) stats.requestTotal++;
      stats.badRequest++;
      logger.debug("request refused", { status, reason });
    },
    onSettled() {
      stats.requestActive--;
    },
    onRequest(conn, head) {
      stats.requestTotal++;
      stats.requestActive++;
      const target = head.target;
      if (isConductorPath(target)) return serveConductor(conn, head);
      const route = routes.lookup(head.host);
      if (route === undefined) return noRoute(conn, head);
      const upgrade = head.upgrade !== null;
      if (upgrade && hasBody(head)) {
        // An upgrade request with a body would leave the body for the app to read as the next request.
        stats.badRequest++;
        return conn.sendPage(400, true);
      }
      if (!authorized(head, route, conn.auth)) {
        stats.unauthorized++;
        return conn.sendPage(403);
      }
      noteUse(route);
      const forward = buildForwardHead(head, conn.facts, upgrade);
      if (upgrade) forwardUpgrade(ctx, route, conn, head.method, forward);
      else forwardRequest(ctx, route, conn, head, forward);
    },
  };

  const proto = secure ? "https" : "http";
  const accept = (socket: Socket): void => {
    stats.connectionTotal++;
    const address = clientAddress(socket);
    if (!limiter.admit(socket, address, connections.size)) {
      stats.connectionRefused++;
      return;
    }
    if (typeof socket.setNoDelay === "function") socket.setNoDelay(true);
    const facts = forwardedFacts(options.trustForwarded ? null : address, proto, options.trustForwarded);
    connections.add(new BrowserConnection(socket, facts, handler, connections));
  };
  const server: Server = tls === undefined
    ? createNetServer({ allowHalfOpen: true, highWaterMark: SOCKET_BUFFER }, accept)
    : createTlsServer({
      allowHalfOpen: true,
      ...tls,
      requestCert: tls.requestCert,
      rejectUnauthorized: tls.requestCert,
      ALPNProtocols: ["http/1.1"],
      handshakeTimeout: timeouts.headers,
    }, accept);
  server.on("tlsClientError", (err: NodeJS.ErrnoException) => {
    logger.debug("TLS handshake failed", { code: err.code, error: err.message });
  });

  /** Answers a request for a host without a route: 503 (try again) while the route is likely on its way, else 404. */
  function noRoute(conn: BrowserConnection, head: RequestHead): void {
    stats.noroute++;
    // At start, or when a route dropped a moment ago, it is likely on its way: say so rather than "not found".
    conn.sendPage(!started || routes.recentlyGone(head.host) ? 503 : 404);
  }

  function serveConductor(conn: BrowserConnection, head: RequestHead): void {
    if (head.method !== "GET" && head.method !== "HEAD") return conn.sendPage(405);
    const url = head.target;
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (path.startsWith(AUTH_PATH)) {
      const route = routes.lookup(head.host);
      if (route === undefined) return noRoute(conn, head);
      return serveAuthLink(authContext(conn), conn, head, route, path, q === -1 ? null : url.slice(q + 1));
    }
    if (path === "/_conductor/status") {
      return conn.respond(200, "OK", [["Content-Type", "application/json"], ["Cache-Control", "no-store"]],
        statusJson(stats, gauges(), options.version));
    }
    if (path === "/_conductor/metrics") {
      return conn.respond(200, "OK", [["Content-Type", "text/plain; version=0.0.4; charset=utf-8"], ["Cache-Control", "no-store"]],
        metricsText(stats, gauges()));
    }
    conn.sendPage(404);
  }

  function authContext(conn: BrowserConnection): AuthLinkContext {
    return { logger, secure: conn.facts.proto === "https", trustForwarded: options.trustForwarded };
  }

  return {
    server,
    get connections() {
      return connections.size;
    },
    closeIdle: () => connections.closeIdle(),
    destroyAll: () => connections.destroyAll(),
    ready: () => { started = true; },
  };
}

function isConductorPath(url: string): boolean {
  return url.startsWith("/_conductor") && (url.length === 11 || url[11] === "/" || url[11] === "?");
}

function clientAddress(socket: Socket): string | null {
  const address = socket.remoteAddress;
  if (address === undefined) return null;
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}
