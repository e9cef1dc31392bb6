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
import type { Duplex } from "node:stream";
import type { ResponseHead } from "./http1.ts";
import { writeRawPage } from "./pages.ts";
import type { ProxyContext } from "./proxy.ts";
import type { Route } from "./routes.ts";
import type { ExchangeHandler, Upstream } from "./upstream.ts";

/** How often an idle tunnel's browser side is probed with TCP keep-alive, in ms. */
const KEEPALIVE_MS = 60_000;

/** Sends an authorized upgrade request (head rewritten for the app) to `route`, and relays what follows. */
export function forwardUpgrade(ctx: ProxyContext, route: Route, client: Duplex, head: string, early: Buffer): void {
  const exchange = new UpgradeExchange(ctx, route, client, early);
  exchange.start(route.pool.connect(), head);
}

class UpgradeExchange implements ExchangeHandler {
  #ctx: ProxyContext;
  #route: Route;
  #client: Duplex;
  #early: Buffer;
  #upstream: Upstream | null = null;
  #done = false;

  constructor(ctx: ProxyContext, route: Route, client: Duplex, early: Buffer) {
    this.#ctx = ctx;
    this.#route = route;
    this.#client = client;
    this.#early = early;
    client.on("error", () => this.#abort());
    client.on("close", () => this.#abort());
  }

  start(upstream: Upstream, head: string): void {
    this.#upstream = upstream;
    upstream.request(head, "GET", this, true);
    upstream.endRequest();
  }

  onUpgrade(head: ResponseHead, app: Socket, rest: Buffer): void {
    this.#done = true;
    this.#upstream = null;
    const { stats } = this.#ctx;
    const client = this.#client;
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
    client.removeAllListeners("close");
    client.removeAllListeners("error");
    client.on("error", close);
    client.on("close", close);
    const socket = client as Socket;
    if (typeof socket.setTimeout === "function") socket.setTimeout(0);
    if (typeof socket.setKeepAlive === "function") socket.setKeepAlive(true, KEEPALIVE_MS);
    client.write(responseHead(head, ["Connection", "Upgrade", "Upgrade", head.upgrade ?? ""]), "latin1");
    if (rest.length > 0) client.write(rest);
    // Bytes the browser sent right after its handshake belong to the new protocol: the app gets them now.
    if (this.#early.length > 0) app.write(this.#early);
    app.pipe(client);
    client.pipe(app);
  }

  onResponseHead(head: ResponseHead): void {
    // Not switching protocols: forward the answer, then close (the body is delimited by the close).
    this.#client.write(responseHead(head, ["Connection", "close"]), "latin1");
  }

  onResponseData(chunk: Buffer): boolean {
    if (this.#client.write(chunk)) return true;
    this.#client.once("drain", () => this.#upstream?.resume());
    return false;
  }

  onResponseEnd(): void {
    this.#done = true;
    this.#upstream = null;
    this.#client.end();
  }

  onUpstreamDrain(): void {}

  onUpstreamError(err: Error, _retryable: boolean, started: boolean): void {
    if (this.#done) return;
    this.#done = true;
    this.#upstream = null;
    this.#ctx.logger.info("app did not answer", { route: this.#route.key, user: this.#route.user, error: err.message, upgrade: true });
    if (started) {
      this.#client.destroy();
      return;
    }
    this.#ctx.stats.broken++;
    writeRawPage(this.#client, (err as NodeJS.ErrnoException).code === "ETIMEDOUT" ? 504 : 502);
  }

  #abort(): void {
    if (this.#done) return;
    this.#done = true;
    this.#upstream?.destroy();
    this.#upstream = null;
  }
}

/** A response head for a raw socket: status line, the app's end-to-end fields, then `extra` fields. */
function responseHead(head: ResponseHead, extra: string[]): string {
  let text = `HTTP/1.1 ${head.status} ${head.reason}\r\n`;
  const fields = [...head.headers, ...extra];
  for (let i = 0; i < fields.length; i += 2) text += fields[i] + ": " + fields[i + 1] + "\r\n";
  return text + "\r\n";
}
