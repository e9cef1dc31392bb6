/**
 * Forwards one browser request to a route's app socket over a pooled
 * connection and streams the response back, with backpressure both ways and
 * without buffering bodies.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../lib/log.ts";
import type { ResponseHead } from "./http1.ts";
import { sendPage } from "./pages.ts";
import type { Route } from "./routes.ts";
import type { Stats } from "./stats.ts";
import type { ExchangeHandler, Upstream } from "./upstream.ts";

/** Shared state of the forwarding code. */
export interface ProxyContext {
  stats: Stats;
  logger: Logger;
}

const CRLF = "\r\n";
/** Methods that may be sent twice (RFC 9110 section 9.2.2). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** Failures of a reused connection that mean the app had closed it while idle. */
const RETRY_CODES = new Set(["EEMPTY", "ECONNRESET", "EPIPE"]);
const LAST_CHUNK = "0\r\n\r\n";

/**
 * Sends `req` (whose head, already rewritten for the app, is `head`) to
 * `route` and answers `res` with the app's response: 502 when the app does
 * not answer, 504 when it is silent too long.
 */
export function forwardRequest(ctx: ProxyContext, route: Route, req: IncomingMessage, res: ServerResponse, head: string, chunked: boolean): void {
  new Exchange(ctx, route, req, res, head, chunked).start(route.pool.acquire());
}

class Exchange implements ExchangeHandler {
  #ctx: ProxyContext;
  #route: Route;
  #req: IncomingMessage;
  #res: ServerResponse;
  #head: string;
  #chunked: boolean;
  #hasBody: boolean;
  #upstream: Upstream | null = null;
  #retried = false;
  #done = false;
  #waitingDrain = false;

  constructor(ctx: ProxyContext, route: Route, req: IncomingMessage, res: ServerResponse, head: string, chunked: boolean) {
    this.#ctx = ctx;
    this.#route = route;
    this.#req = req;
    this.#res = res;
    this.#head = head;
    this.#chunked = chunked;
    const length = req.headers["content-length"];
    this.#hasBody = chunked || (length !== undefined && length !== "0");
    res.once("close", () => this.#onBrowserClose());
  }

  start(upstream: Upstream): void {
    this.#upstream = upstream;
    upstream.request(this.#head, this.#req.method ?? "GET", this);
    if (!this.#hasBody) {
      upstream.endRequest();
      return;
    }
    const req = this.#req;
    req.on("data", (chunk: Buffer) => this.#onBodyData(chunk));
    req.once("end", () => this.#onBodyEnd());
  }

  #onBodyData(chunk: Buffer): void {
    const upstream = this.#upstream;
    if (upstream === null || this.#done) return;
    let ok: boolean;
    if (this.#chunked) {
      upstream.socket.cork();
      upstream.write(chunk.length.toString(16) + CRLF);
      upstream.write(chunk);
      ok = upstream.write(CRLF);
      upstream.socket.uncork();
    } else {
      ok = upstream.write(chunk);
    }
    if (!ok) this.#req.pause();
  }

  #onBodyEnd(): void {
    const upstream = this.#upstream;
    if (upstream === null || this.#done) return;
    if (this.#chunked) upstream.write(LAST_CHUNK);
    upstream.endRequest();
  }

  onUpstreamDrain(): void {
    this.#req.resume();
  }

  onResponseHead(head: ResponseHead): void {
    const res = this.#res;
    // The app answers before the browser finished sending: this connection ends with the response.
    const headers = this.#hasBody && !this.#req.complete ? [...head.headers, "Connection", "close"] : head.headers;
    try {
      res.writeHead(head.status, head.reason, headers);
    } catch (err) {
      // Node refused a field the parser let through: treat as a broken app.
      this.#ctx.logger.warn("bad response head from app", { route: this.#route.key, user: this.#route.user, error: err });
      this.#upstream?.destroy();
      this.#broken(502);
    }
  }

  onResponseData(chunk: Buffer): boolean {
    if (this.#res.write(chunk)) return true;
    if (!this.#waitingDrain) {
      this.#waitingDrain = true;
      this.#res.once("drain", () => {
        this.#waitingDrain = false;
        this.#upstream?.resume();
      });
    }
    return false;
  }

  onResponseEnd(): void {
    this.#done = true;
    this.#upstream = null;
    this.#res.end();
  }

  onUpstreamError(err: Error, retryable: boolean, started: boolean): void {
    if (this.#done) return;
    if (retryable && !this.#retried && !this.#hasBody && !this.#res.destroyed &&
      RETRY_CODES.has((err as NodeJS.ErrnoException).code ?? "") && IDEMPOTENT.has(this.#req.method ?? "")) {
      // The app closed a pooled connection while it was idle: try once on a fresh one.
      this.#retried = true;
      this.start(this.#route.pool.connect());
      return;
    }
    this.#upstream = null;
    const code = (err as NodeJS.ErrnoException).code;
    this.#ctx.logger.info("app did not answer", { route: this.#route.key, user: this.#route.user, error: err.message, code });
    if (started || this.#res.headersSent) {
      this.#done = true;
      this.#res.destroy();
      return;
    }
    this.#broken(code === "ETIMEDOUT" ? 504 : 502);
  }

  #broken(status: number): void {
    this.#done = true;
    this.#ctx.stats.broken++;
    if (this.#res.headersSent) {
      this.#res.destroy();
      return;
    }
    // Close after the page when the browser is still sending a body nobody will read.
    sendPage(this.#res, status, this.#hasBody && !this.#req.complete);
  }

  #onBrowserClose(): void {
    if (this.#done && this.#res.writableFinished) return;
    this.#done = true;
    const upstream = this.#upstream;
    this.#upstream = null;
    upstream?.destroy();
  }
}
