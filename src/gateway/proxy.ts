/**
 * Forwards one browser request to a route's app socket over a pooled
 * connection and streams the response back, with backpressure both ways and
 * without buffering bodies. The request body goes to the app as received;
 * the response is re-framed for the browser (Content-Length kept, anything
 * else sent chunked, or delimited by closing for HTTP/1.0).
 *
 * @module
 */
import type { Logger } from "../lib/log.ts";
import { noteUse } from "./activity.ts";
import { logAppFailure } from "./failure_log.ts";
import { appBusyPage } from "./pages.ts";
import type { Answering, BodySink, BrowserConnection } from "./connection.ts";
import type { ResponseHead } from "./http1.ts";
import type { PoolClient } from "./pool.ts";
import type { RequestHead } from "./request_head.ts";
import { hasBody } from "./request_head.ts";
import type { Route } from "./routes.ts";
import type { Stats } from "./stats.ts";
import type { ExchangeHandler, Upstream } from "./upstream.ts";

/** Shared state of the forwarding code. */
export interface ProxyContext {
  stats: Stats;
  logger: Logger;
}

/** Methods that may be sent twice (RFC 9110 section 9.2.2). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** Failures of a reused connection that mean the app had closed it while idle. */
const RETRY_CODES = new Set(["EEMPTY", "ECONNRESET", "EPIPE"]);
const CRLF = "\r\n";
const LAST_CHUNK = "0\r\n\r\n";
const CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n";

/**
 * Sends the request `request` (whose head, rewritten for the app, is `head`)
 * to `route` and answers on `conn`: 502 when the app does not answer, 504
 * when it is silent too long, 503 when it has all the connections it may.
 */
export function forwardRequest(ctx: ProxyContext, route: Route, conn: BrowserConnection, request: RequestHead, head: string): void {
  route.pool.lease(new Exchange(ctx, route, conn, request, head));
}

/** One request and its response: the pool's client, the upstream's handler and the browser body's sink, in one object. */
class Exchange implements ExchangeHandler, BodySink, PoolClient, Answering {
  #ctx: ProxyContext;
  #route: Route;
  #conn: BrowserConnection;
  #request: RequestHead;
  #head: string;
  #upstream: Upstream | null = null;
  #retried = false;
  #done = false;
  #started = false;
  #rechunk = false;
  #waitingDrain = false;
  /** The response head, held back to leave in one write with the first body bytes of the same read. */
  #pendingHead: string | null = null;
  #bodyEnded: boolean;
  /** The drain listener, made only when the browser reads slowly. */
  #onDrain: (() => void) | null = null;

  constructor(ctx: ProxyContext, route: Route, conn: BrowserConnection, request: RequestHead, head: string) {
    this.#ctx = ctx;
    this.#route = route;
    this.#conn = conn;
    this.#request = request;
    this.#head = head;
    this.#bodyEnded = !hasBody(request);
    conn.answering = this;
  }

  /** The pool's answer: a connection to send the request on, or null (the app is at its cap: 503). */
  take(upstream: Upstream | null): void {
    if (this.#done) {
      if (upstream !== null) this.#route.pool.release(upstream);
      return;
    }
    if (upstream !== null) return this.start(upstream);
    this.#done = true;
    this.#ctx.stats.appBusy++;
    this.#conn.sendPage(503, false, appBusyPage());
  }

  start(upstream: Upstream): void {
    this.#upstream = upstream;
    upstream.request(this.#head, this.#request.method, this);
    if (this.#bodyEnded) {
      upstream.endRequest();
      return;
    }
    // The browser waits for a go-ahead before sending the body; the app's own 100 is not forwarded.
    if (this.#request.expectContinue) this.#conn.write(CONTINUE);
    this.#conn.readBody(this);
  }

  // BodySink: the request body, raw, to the app.
  data(chunk: Buffer): boolean {
    if (this.#done || this.#upstream === null) return true;
    noteUse(this.#route);
    return this.#upstream.write(chunk);
  }

  end(): void {
    this.#bodyEnded = true;
    this.#upstream?.endRequest();
  }

  abort(reason: string): void {
    if (this.#done) return;
    this.#ctx.logger.debug("request body aborted", { route: this.#route.key, reason });
    this.#done = true;
    this.#upstream?.destroy();
    this.#upstream = null;
  }

  onUpstreamDrain(): void {
    this.#conn.resumeBody();
  }

  onResponseHead(head: ResponseHead): void {
    this.#started = true;
    const conn = this.#conn;
    const http11 = this.#request.http11;
    let text = head.head;
    if (head.framing === "chunked" || head.framing === "close") {
      // Without a length, an HTTP/1.1 browser gets chunks; an HTTP/1.0 one gets the end of the connection.
      if (http11) {
        this.#rechunk = true;
        text += "Transfer-Encoding: chunked\r\n";
      } else {
        conn.closeAfterResponse();
      }
    }
    // The app answered before the browser finished sending: the connection ends with this response.
    if (!this.#bodyEnded) conn.closeAfterResponse();
    this.#pendingHead = text + conn.connectionField() + CRLF;
  }

  onResponseData(chunk: Buffer): boolean {
    const conn = this.#conn;
    const size = this.#rechunk ? chunk.length.toString(16) + CRLF : "";
    const tail = this.#rechunk ? CRLF : "";
    const head = this.#pendingHead;
    let ok: boolean;
    if (head !== null) {
      this.#pendingHead = null;
      ok = conn.writeHead(head + size, chunk, tail);
    } else {
      ok = conn.writeFramed(size, chunk, tail);
    }
    if (!ok && !this.#waitingDrain) {
      this.#waitingDrain = true;
      conn.socket.once("drain", this.#onDrain ??= () => this.#drained());
    }
    return ok;
  }

  onReadEnd(): void {
    const head = this.#pendingHead;
    if (head === null) return;
    this.#pendingHead = null;
    this.#conn.writeHead(head);
  }

  onResponseEnd(): void {
    this.#done = true;
    this.#upstream = null;
    const head = this.#pendingHead;
    this.#pendingHead = null;
    const last = this.#rechunk ? LAST_CHUNK : "";
    if (head !== null) this.#conn.writeHead(head + last);
    else if (last !== "") this.#conn.write(last);
    this.#conn.endResponse();
  }

  onUpstreamError(err: Error, retryable: boolean, started: boolean): void {
    if (this.#done) return;
    if (retryable && !this.#retried && this.#bodyEnded && !hasBody(this.#request) &&
      RETRY_CODES.has((err as NodeJS.ErrnoException).code ?? "") && IDEMPOTENT.has(this.#request.method)) {
      // The app closed a pooled connection while it was idle: try once on a fresh one.
      this.#retried = true;
      this.start(this.#route.pool.connect());
      return;
    }
    this.#done = true;
    this.#upstream = null;
    const code = (err as NodeJS.ErrnoException).code;
    logAppFailure(this.#ctx.logger, this.#route, { error: err.message, code });
    if (started || this.#started) {
      this.#conn.destroy();
      return;
    }
    this.#ctx.stats.broken++;
    this.#conn.sendPage(code === "ETIMEDOUT" ? 504 : 502);
  }

  /** The browser drained what was written: the app's response may flow again. */
  #drained(): void {
    this.#waitingDrain = false;
    this.#upstream?.resume();
  }

  browserGone(): void {
    if (this.#done) return;
    this.#done = true;
    this.#route.pool.withdraw(this);
    const upstream = this.#upstream;
    this.#upstream = null;
    upstream?.destroy();
  }
}

