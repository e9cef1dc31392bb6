/**
 * Websocket (and any HTTP/1.1 Upgrade) tunnels: once the gateway has
 * authorized the handshake, it writes the rewritten head to a new connection
 * to the app and relays bytes both ways until either side closes.
 *
 * @module
 */
import { connect } from "node:net";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { writeRawPage } from "./pages.ts";
import type { ProxyContext } from "./proxy.ts";
import type { Route } from "./routes.ts";

/** How often an idle tunnel's browser side is probed with TCP keep-alive, in ms. */
const KEEPALIVE_MS = 60_000;
/** How long the browser side may take to close after the app side did, in ms. */
const LINGER_MS = 10_000;

/** Relays an upgraded connection between the browser `client` and `route`'s app socket. */
export function tunnelUpgrade(ctx: ProxyContext, route: Route, client: Duplex, head: string, early: Buffer): void {
  const { stats } = ctx;
  const app = connect(route.socketPath);
  stats.upstreamConnects++;
  stats.upgradeTotal++;
  stats.upgradeActive++;
  let answered = false;
  let closed = false;
  const finish = (): void => {
    if (closed) return;
    closed = true;
    stats.upgradeActive--;
    app.destroy();
    client.destroy();
  };
  // Before the app's first byte a failure is a 502 to the browser; after it, both sides just close.
  const fail = (reason: string): void => {
    if (closed) return;
    if (answered) return finish();
    closed = true;
    stats.upgradeActive--;
    stats.broken++;
    ctx.logger.info("app did not answer", { route: route.key, user: route.user, error: reason, upgrade: true });
    app.destroy();
    writeRawPage(client, 502);
  };
  app.once("data", () => { answered = true; });
  app.on("error", (err) => fail(err.message));
  app.on("end", () => { if (!answered) fail("app closed the connection without a response"); });
  app.on("close", () => {
    if (!answered) return fail("app connection closed");
    // Let the browser side flush what the app sent last (pipe ends it), then close.
    setTimeout(finish, LINGER_MS).unref();
  });
  client.on("error", finish);
  client.on("close", finish);
  const socket = client as Socket;
  if (typeof socket.setTimeout === "function") socket.setTimeout(0);
  if (typeof socket.setKeepAlive === "function") socket.setKeepAlive(true, KEEPALIVE_MS);
  app.write(head, "latin1");
  if (early.length > 0) app.write(early);
  app.pipe(client);
  client.pipe(app);
}
