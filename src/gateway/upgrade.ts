/**
 * Websocket (and any HTTP/1.1 Upgrade) requests: once the gateway has
 * authorized the handshake, it sends it to the app on a new connection and
 * reads the answer as HTTP. Only a 101 turns the two connections into a
 * tunnel that relays bytes both ways; any other answer is forwarded as a
 * response and the browser connection closes after it, so nothing the browser
 * sends next reaches the app unrouted.
 *
 * @module
 */
import type { Socket } from "node:net";
import { noteTunnelUse, WebSocketActivity } from "./activity.ts";
import type { Answering, BrowserConnection } from "./connection.ts";
import { logAppFailure } from "./failure_log.ts";
import { appBusyPage } from "./pages.ts";
import type { ResponseHead } from "./http1.ts";
import type { PoolClient } from "./pool.ts";
import type { ProxyContext } from "./proxy.ts";
import type { Route } from "./routes.ts";
import type { ExchangeHandler, Upstream } from "./upstream.ts";

/** How often an idle tunnel's browser side is probed with TCP keep-alive, in ms. */
const KEEPALIVE_MS = 60_000;
/** How long a tunnel stays open after one side finished sending (a half-close), in ms. */
const HALF_CLOSED_MS = 10_000;

/** Sends an authorized upgrade request (head rewritten for the app) to `route`, and relays what follows. */
export function forwardUpgrade(ctx: ProxyContext, route: Route, conn: BrowserConnection, method: string, head: string): void {
  route.pool.lease(new UpgradeExchange(ctx, route, conn, method, head), true);
}

class UpgradeExchange implements ExchangeHandler, PoolClient, Answering {
  #ctx: ProxyContext;
  #route: Route;
  #conn: BrowserConnection;
  #method: string;
  #head: string;
  #upstream: Upstream | null = null;
  #done = false;
  #waitingDrain = false;

  constructor(ctx: ProxyContext, route: Route, conn: BrowserConnection, method: string, head: string) {
    this.#ctx = ctx;
    this.#route = route;
    this.#conn = conn;
    this.#method = method;
    this.#head = head;
    conn.answering = this;
    // Whatever answer comes, this browser connection will not carry another HTTP request.
    conn.closeAfterResponse();
  }

  /** The pool's answer: a new connection for the handshake, or null (the app is at its cap: 503). */
  take(upstream: Upstream | null): void {
    if (this.#done) {
      upstream?.destroy();
      return;
    }
    if (upstream === null) {
      this.#done = true;
      this.#ctx.stats.appBusy++;
      this.#conn.sendPage(503, true, appBusyPage());
      return;
    }
    this.#upstream = upstream;
    upstream.request(this.#head, this.#method, this, true);
    upstream.endRequest();
  }

  onUpgrade(head: ResponseHead, app: Socket, rest: Buffer): void {
    this.#done = true;
    this.#upstream = null;
    const { stats } = this.#ctx;
    const { socket: client, rest: early } = this.#conn.takeOver();
    if (client.destroyed) {
      app.destroy();
      return;
    }
    stats.upgradeTotal++;
    stats.upgradeActive++;
    this.#route.pool.adopt(app);
    let open = true;
    const close = (): void => {
      if (!open) return;
      open = false;
      stats.upgradeActive--;
      app.destroy();
      client.destroy();
    };
    app.on("error", close);
    app.on("close", close);
    client.on("error", close);
    client.on("close", close);
    // A side that stopped sending gets its end passed on (pipe does that); the tunnel then closes soon after.
    const soon = (): void => { setTimeout(close, HALF_CLOSED_MS).unref(); };
    app.once("end", soon);
    client.once("end", soon);
    client.setTimeout(0);
    if (typeof client.setKeepAlive === "function") client.setKeepAlive(true, KEEPALIVE_MS);
    client.write(responseHead(head, `Connection: Upgrade\r\nUpgrade: ${head.upgrade ?? ""}\r\n`), "latin1");
    if (rest.length > 0) client.write(rest);
    // What the browser sends is its use of the app, except a websocket's control frames (pings keep idle tabs open).
    const route = this.#route;
    const frames = /^websocket$/i.test(head.upgrade ?? "") ? new WebSocketActivity() : null;
    const noteActivity = (chunk: Buffer): void => noteTunnelUse(route, frames, chunk);
    // Bytes the browser sent right after its handshake belong to the new protocol: the app gets them now.
    if (early.length > 0) {
      noteActivity(early);
      app.write(early);
    }
    client.on("data", noteActivity);
    app.pipe(client);
    client.pipe(app);
    client.resume();
  }

  onResponseHead(head: ResponseHead): void {
    // Not switching protocols: forward the answer, then close (the body is delimited by the close).
    this.#conn.writeHead(responseHead(head, "Connection: close\r\n"));
  }

  onResponseData(chunk: Buffer): boolean {
    const socket = this.#conn.socket;
    if (socket.write(chunk)) return true;
    if (!this.#waitingDrain) {
      this.#waitingDrain = true;
      socket.once("drain", () => {
        this.#waitingDrain = false;
        this.#upstream?.resume();
      });
    }
    return false;
  }

  onResponseEnd(): void {
    this.#done = true;
    this.#upstream = null;
    this.#conn.endResponse();
  }

  onUpstreamDrain(): void {}

  onUpstreamError(err: Error, _retryable: boolean, started: boolean): void {
    if (this.#done) return;
    this.#done = true;
    this.#upstream = null;
    logAppFailure(this.#ctx.logger, this.#route, { error: err.message, upgrade: true });
    if (started) {
      this.#conn.destroy();
      return;
    }
    this.#ctx.stats.broken++;
    this.#conn.sendPage((err as NodeJS.ErrnoException).code === "ETIMEDOUT" ? 504 : 502, true);
  }

  browserGone(): void {
    if (this.#done) return;
    this.#done = true;
    this.#route.pool.withdraw(this);
    this.#upstream?.destroy();
    this.#upstream = null;
  }
}

/** A response head for a raw socket: status line, the app's end-to-end fields, then `extra` field lines. */
function responseHead(head: ResponseHead, extra: string): string {
  return head.head + extra + "\r\n";
}
