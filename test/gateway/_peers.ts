/**
 * Peers for the gateway's in-process tests: a raw app socket that answers
 * each request with the bytes a test scripts, and a listening front end.
 *
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDomainPattern } from "../../src/gateway/domains.ts";
import { createFrontEnd, type FrontEnd, type FrontEndOptions } from "../../src/gateway/front.ts";
import { RouteTable } from "../../src/gateway/routes.ts";
import { createStats } from "../../src/gateway/stats.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { defer, type Cleanup } from "../helpers/cleanup.ts";

/**
 * A raw app on a UNIX socket in a temporary directory: for each request head
 * it receives (with its body when it has a Content-Length, unless `early`),
 * `answer` writes what it likes. Returns the socket's path.
 */
export async function rawApp(t: Cleanup, answer: (socket: Socket, head: string, n: number) => void, early = false): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "conductor-rawapp-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "app.sock");
  const sockets = new Set<Socket>();
  let n = 0;
  const server = createServer((socket) => {
    sockets.add(socket);
    let buf = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      buf += chunk;
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = buf.slice(0, end);
        const length = Number(/\r\ncontent-length: *([0-9]+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length && !early) return;
        buf = buf.slice(end + 4 + length);
        answer(socket, head, n++);
      }
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  defer(t, () => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return path;
}

/** A front end listening on 127.0.0.1, not yet ready unless `ready`, with a route table for `{key}-{user}.localhost` unless given. */
export async function listeningFront(t: Cleanup, options: Partial<FrontEndOptions> = {}, ready = true): Promise<{ front: FrontEnd; port: number }> {
  const front = createFrontEnd({
    routes: new RouteTable([parseDomainPattern("{key}-{user}.localhost")]),
    stats: createStats(),
    logger: silentLogger,
    gauges: () => ({ routesTotal: 0, controlConnections: 0, appWaiting: 0, startedAt: Date.now() }),
    version: "test",
    trustForwarded: false,
    ...options,
  });
  await new Promise<void>((resolve) => front.server.listen(0, "127.0.0.1", resolve));
  defer(t, () => new Promise((resolve) => { front.destroyAll(); front.server.close(resolve); }));
  if (ready) front.ready();
  return { front, port: (front.server.address() as AddressInfo).port };
}
