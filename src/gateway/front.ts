/**
 * The HTTP(S) front end: routes requests by Host, answers `/_conductor/*`,
 * checks the `authorization` cookie, and hands authorized requests and
 * websocket upgrades to the proxy.
 *
 * @module
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { SecureContextOptions } from "node:tls";
import type { Logger } from "../lib/log.ts";
import { tokenMatches } from "../lib/token.ts";
import { authCookie, isCookieSafe, safeNext } from "./auth.ts";
import { buildForwardHead, type ForwardedFacts } from "./forward_head.ts";
import { sendPage, writeRawPage } from "./pages.ts";
import { forwardRequest, type ProxyContext } from "./proxy.ts";
import { checkRequest, isRefusal, MAX_HEADER_LINES } from "./request_check.ts";
import type { Route, RouteTable } from "./routes.ts";
import { metricsText, statusJson, type Gauges, type Stats } from "./stats.ts";
import { forwardUpgrade } from "./upgrade.ts";

/** Time limits of the browser side, in ms. */
export interface FrontTimeouts {
  /** Longest time to receive a request head (408 after it). Default 30 s. */
  headers: number;
  /** Longest idle time of a keep-alive connection between requests. Default 65 s. */
  keepAlive: number;
}

/** Default browser-side time limits. */
export const DEFAULT_FRONT_TIMEOUTS: FrontTimeouts = { headers: 30_000, keepAlive: 65_000 };

/** Settings of {@link createFrontEnd}. */
export interface FrontEndOptions {
  routes: RouteTable;
  stats: Stats;
  logger: Logger;
  /** Figures for the status page, read when it is requested. */
  gauges: () => Gauges;
  version: string;
  /** TLS context; with `requestCert` the client must present an allowed certificate. */
  tls?: SecureContextOptions & { requestCert: boolean };
  /** Keep X-Forwarded-* from the request (true when a reverse proxy in front talks to a UNIX socket). */
  trustForwarded: boolean;
  timeouts?: FrontTimeouts;
}

const kInFlight = Symbol("conductor.inFlight");
const kRefusal = Symbol("conductor.refusal");
const kLast = Symbol("conductor.last");
/**
 * A browser connection with the number of its responses not yet finished
 * (pipelining makes it more than one), its latest request, and the error page
 * owed once those responses are done.
 */
type TrackedSocket = Socket & { [kInFlight]?: number; [kLast]?: IncomingMessage; [kRefusal]?: number };

/** Creates the (not yet listening) HTTP or HTTPS server of the gateway. */
export function createFrontEnd(options: FrontEndOptions): Server {
  const { routes, stats, logger, tls } = options;
  const timeouts = options.timeouts ?? DEFAULT_FRONT_TIMEOUTS;
  const ctx: ProxyContext = { stats, logger };
  const secure = tls !== undefined;
  const httpOptions = {
    requestTimeout: 0,
    headersTimeout: timeouts.headers,
    keepAliveTimeout: timeouts.keepAlive,
    connectionsCheckingInterval: Math.min(5_000, timeouts.headers),
    noDelay: true,
  };
  const server: Server = tls === undefined
    ? createHttpServer(httpOptions)
    : createHttpsServer({
      ...httpOptions,
      ...tls,
      requestCert: tls.requestCert,
      rejectUnauthorized: tls.requestCert,
      ALPNProtocols: ["http/1.1"],
    });
  server.maxHeadersCount = MAX_HEADER_LINES + 1;

  const factsOf = (req: IncomingMessage): ForwardedFacts => ({
    clientAddress: options.trustForwarded ? null : clientAddress(req.socket),
    proto: secure ? "https" : "http",
    trustForwarded: options.trustForwarded,
  });

  function onResponseClose(this: ServerResponse): void {
    stats.requestActive--;
    const socket = this.req.socket as TrackedSocket;
    if (--socket[kInFlight]! === 0 && socket[kRefusal] !== undefined) writeRawPage(socket, socket[kRefusal]);
  }

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    stats.requestTotal++;
    stats.requestActive++;
    const tracked = req.socket as TrackedSocket;
    tracked[kInFlight] = (tracked[kInFlight] ?? 0) + 1;
    tracked[kLast] = req;
    res.once("close", onResponseClose);
    const checked = checkRequest(req);
    if (isRefusal(checked)) {
      stats.badRequest++;
      logger.debug("request refused", { status: checked.status, reason: checked.reason });
      sendPage(res, checked.status, true);
      return;
    }
    const url = req.url!;
    if (isConductorPath(url)) {
      serveConductor(req, res, url);
      return;
    }
    const route = routes.lookup(checked.host);
    if (route === undefined) {
      stats.noroute++;
      sendPage(res, 404, hasBody(req));
      return;
    }
    const forward = buildForwardHead(req, checked.host, factsOf(req), checked.chunked, false);
    if (!authorized(forward.tokens, route)) {
      stats.unauthorized++;
      sendPage(res, 403, hasBody(req));
      return;
    }
    forwardRequest(ctx, route, req, res, forward.head, checked.chunked);
  });

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, early: Buffer) => {
    stats.requestTotal++;
    const checked = checkRequest(req);
    if (isRefusal(checked) || hasBody(req)) {
      // An upgrade request with a body would leave the body for the app to read as the next request.
      stats.badRequest++;
      return writeRawPage(socket, isRefusal(checked) ? checked.status : 400);
    }
    const route = isConductorPath(req.url!) ? undefined : routes.lookup(checked.host);
    if (route === undefined) {
      stats.noroute++;
      return writeRawPage(socket, 404);
    }
    const forward = buildForwardHead(req, checked.host, factsOf(req), false, true);
    if (!authorized(forward.tokens, route)) {
      stats.unauthorized++;
      return writeRawPage(socket, 403);
    }
    forwardUpgrade(ctx, route, socket, forward.head, early);
  });

  server.on("connect", (_req: IncomingMessage, socket: Duplex) => {
    stats.requestTotal++;
    stats.badRequest++;
    writeRawPage(socket, 405);
  });

  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    const tracked = socket as TrackedSocket;
    if (err.code === "ECONNRESET" || !socket.writable || tracked[kRefusal] !== undefined) {
      socket.destroy();
      return;
    }
    stats.badRequest++;
    const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
    logger.debug("malformed request", { status, code: err.code });
    if ((tracked[kInFlight] ?? 0) > 0) {
      if (tracked[kLast]?.complete === false) {
        // The body of a request being answered is broken: that response cannot be finished.
        socket.destroy();
        return;
      }
      // Earlier pipelined requests are still being answered: the page follows their responses.
      tracked[kRefusal] = status;
      return;
    }
    writeRawPage(socket, status);
  });

  server.on("tlsClientError", (err: NodeJS.ErrnoException) => {
    logger.debug("TLS handshake failed", { code: err.code, error: err.message });
  });

  function serveConductor(req: IncomingMessage, res: ServerResponse, url: string): void {
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendPage(res, 405, hasBody(req));
      return;
    }
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (path.startsWith("/_conductor/auth/")) {
      let token: string;
      try {
        token = decodeURIComponent(path.slice("/_conductor/auth/".length));
      } catch {
        token = "";
      }
      if (!isCookieSafe(token)) {
        sendPage(res, 400);
        return;
      }
      const next = q === -1 ? null : new URLSearchParams(url.slice(q + 1)).get("next");
      const location = safeNext(next);
      const body = "Follow the white rabbit to " + location + "\n";
      res.writeHead(302, {
        Location: location,
        "Set-Cookie": authCookie(token, secure),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Length": Buffer.byteLength(body),
      });
      res.end(req.method === "HEAD" ? undefined : body);
      logger.debug("auth link used", { host: req.headers.host });
      return;
    }
    if (path === "/_conductor/status") {
      sendText(res, 200, "application/json", statusJson(stats, options.gauges(), options.version));
      return;
    }
    if (path === "/_conductor/metrics") {
      sendText(res, 200, "text/plain; version=0.0.4; charset=utf-8", metricsText(stats, options.gauges()));
      return;
    }
    sendPage(res, 404);
  }

  return server;
}

function sendText(res: ServerResponse, status: number, type: string, text: string): void {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(text), "Cache-Control": "no-store" });
  res.end(res.req.method === "HEAD" ? undefined : text);
}

/** True when one of the cookie tokens is the route's. */
function authorized(tokens: string[], route: Route): boolean {
  for (const token of tokens) if (tokenMatches(token, route.authHash)) return true;
  return false;
}

function isConductorPath(url: string): boolean {
  return url.startsWith("/_conductor") && (url.length === 11 || url[11] === "/" || url[11] === "?");
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

function clientAddress(socket: Socket): string | null {
  const address = socket.remoteAddress;
  if (address === undefined) return null;
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}
