/**
 * The streams' admin API, with stream-conductor's verbs and JSON:
 * `GET /status`, `/getstreams`, `/createstream/<port>/<backend>`,
 * `/removestream/<port>`, `/hasstream/<port>`, `/getfreeport`, answering
 * `{"result": ..., "errors": ...}`. Never open: it listens on a UNIX socket
 * whose mode and group decide who may connect, or on a TCP address where
 * each request carries a bearer token.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { promises as fs } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { ConductorError, isErrno, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { lookupGroupId } from "../lib/users.ts";
import { VERSION } from "../lib/version.ts";
import { removeStaleSocket } from "../lib/socket_check.ts";
import { ADMIN_OWNER, type StreamManager } from "./manager.ts";
import { checkPort, checkStreamName, rangeSize } from "./validate.ts";

/** Where the admin API listens, and how callers prove they are the admin. */
export interface AdminOptions {
  /** A UNIX socket, reachable by its mode and group. */
  socket?: { path: string; mode: number; group?: string };
  /** A TCP address; every request needs `Authorization: Bearer <token>` with the token of `tokenFile`. */
  listen?: { host: string; port: number; tokenFile: string };
}

/** A running admin API. */
export interface AdminApi {
  /** The TCP port it listens on, if any. */
  readonly port: number | null;
  close(): Promise<void>;
}

/** Starts the admin API on what `options` names; throws a `ConductorError` that says what is wrong. */
export async function startAdminApi(manager: StreamManager, options: AdminOptions, logger: Logger): Promise<AdminApi> {
  const servers: Server[] = [];
  let port: number | null = null;
  try {
    if (options.socket !== undefined) {
      const { path, mode, group } = options.socket;
      const gid = group === undefined ? null : await lookupGroupId(group);
      await removeStaleSocket(path, "--admin-socket");
      const server = createServer((req, res) => void answer(manager, req, res, logger));
      await listen(server, path, "--admin-socket");
      servers.push(server);
      try {
        if (gid !== null) await fs.chown(path, -1, gid);
        await fs.chmod(path, mode);
      } catch (err) {
        throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot set the owner group and mode of --admin-socket ${path}: ${messageOf(err)}${isErrno(err, "EPERM") ? `; the gateway's user must be a member of group ${group}` : ""}`, { cause: err });
      }
      logger.info("stream admin API listening", { path, mode: "0" + mode.toString(8), group });
    }
    if (options.listen !== undefined) {
      const { host, tokenFile } = options.listen;
      const token = await readToken(tokenFile);
      const server = createServer((req, res) => {
        if (!bearerMatches(req.headers.authorization, token)) {
          logger.info("stream admin API: request without the right token refused", { address: req.socket.remoteAddress, url: req.url?.slice(0, 200) });
          return send(res, 401, { result: "error", errors: "Cannot serve the request: it needs 'Authorization: Bearer TOKEN' with the token of the gateway's --admin-token-file" }, { "WWW-Authenticate": "Bearer" });
        }
        void answer(manager, req, res, logger);
      });
      await listen(server, { host, port: options.listen.port }, "--admin-listen");
      servers.push(server);
      port = (server.address() as { port: number }).port;
      logger.info("stream admin API listening", { host, port });
    }
  } catch (err) {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    throw err;
  }
  return {
    port,
    async close() {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      })));
      if (options.socket !== undefined) await fs.rm(options.socket.path, { force: true });
    },
  };
}

/** Answers one admin request. */
async function answer(manager: StreamManager, req: IncomingMessage, res: ServerResponse, logger: Logger): Promise<void> {
  if (req.method !== "GET") return send(res, 405, { result: "error", errors: "Cannot serve the request: the admin API answers GET only" }, { Allow: "GET" });
  const url = new URL(req.url ?? "/", "http://admin");
  const [verb, ...rest] = url.pathname.split("/").slice(1);
  try {
    switch (verb) {
      case "status": {
        const { first, last } = manager.settings.range;
        const streams = manager.list().length;
        // stream-conductor printed Python's range(); its end is exclusive.
        return send(res, 200, { version: VERSION, available_ports: `range(${first}, ${last + 1})`, range: { first, last }, streams, free: rangeSize(manager.settings.range) - streams });
      }
      case "getstreams":
        return send(res, 200, manager.list().map((s) => ({ listen: s.port, proxy_pass: s.backend, owner: s.owner, name: s.name, created: s.created })));
      case "hasstream":
        return send(res, 200, { result: manager.get(portOf(rest, manager)) === undefined ? "false" : "true" });
      case "getfreeport": {
        const port = await manager.freePort();
        return port === null ? send(res, 409, { result: "error", errors: "Cannot find a free port: every port of the range is taken" }) : send(res, 200, { result: "ok", port });
      }
      case "createstream": {
        const port = portOf(rest.slice(0, 1), manager);
        // The backend is the rest of the path: a unix: backend holds slashes.
        const backend = decodeURIComponent(rest.slice(1).join("/"));
        const name = checkStreamName(url.searchParams.get("name") ?? `port-${port}`);
        const holder = manager.get(port);
        if (holder !== undefined) return send(res, 409, { result: "error", errors: `Cannot create a stream on port ${port}: ${holder.owner}'s stream ${holder.name} listens there; remove it first` });
        await manager.publish({ owner: ADMIN_OWNER, name, backend, port });
        logger.info("stream admin API: stream created", { port, backend, name });
        return send(res, 200, { result: "ok", errors: "" });
      }
      case "removestream": {
        const port = portOf(rest, manager);
        const stream = manager.get(port);
        if (stream === undefined) return send(res, 404, { result: "error", errors: `Cannot remove the stream on port ${port}: there is none` });
        if (stream.owner !== ADMIN_OWNER) {
          return send(res, 409, { result: "error", errors: `Cannot remove the stream on port ${port}: it is user ${stream.owner}'s (service ${stream.name}) and goes when its conductor stops; ask the user, or end their conductor` });
        }
        await manager.remove(port, (s) => s.owner === ADMIN_OWNER);
        logger.info("stream admin API: stream removed", { port });
        return send(res, 200, { result: "ok", errors: "" });
      }
      default:
        return send(res, 404, { result: "error", errors: `Cannot serve ${url.pathname.slice(0, 100)}: the admin API knows /status, /getstreams, /createstream/PORT/BACKEND, /removestream/PORT, /hasstream/PORT and /getfreeport` });
    }
  } catch (err) {
    const code = err instanceof ConductorError ? err.code : "";
    const status = code === "CONDUCTOR_ERR_STREAM_INVALID" || err instanceof URIError ? 400 : code === "CONDUCTOR_ERR_STREAM_REFUSED" ? 409 : 500;
    if (status === 500) logger.error(`stream admin API: ${messageOf(err)}`, { url: url.pathname });
    return send(res, status, { result: "error", errors: messageOf(err) });
  }
}

/** The port of a path's one remaining segment, checked against the range. */
function portOf(rest: string[], manager: StreamManager): number {
  return checkPort(rest.length === 1 ? rest[0] : rest.join("/"), manager.settings.range);
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body) + "\n";
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), "Cache-Control": "no-store", ...headers });
  res.end(text);
}

/** True when `header` is `Bearer <token>` with the right token, compared in constant time. */
function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer +(\S+)\s*$/i.exec(header ?? "");
  if (m === null) return false;
  const digest = (s: string): Buffer => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(m[1]), digest(token));
}

/** The token in `path`: a file only the gateway's user may read, holding at least 16 characters. */
async function readToken(path: string): Promise<string> {
  let text: string;
  let mode: number;
  try {
    mode = (await fs.stat(path)).mode;
    text = await fs.readFile(path, "utf8");
  } catch (err) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot read --admin-token-file ${path}: ${messageOf(err)}`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot use --admin-token-file ${path}: other users may read it (mode 0${(mode & 0o777).toString(8)}); chmod 600 it`);
  }
  const token = text.trim();
  if (token.length < 16 || /\s/.test(token)) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot use --admin-token-file ${path}: it must hold one token of at least 16 characters without spaces (e.g. head -c 32 /dev/urandom | base64 > ${path})`);
  }
  return token;
}

function listen(server: Server, where: string | { host: string; port: number }, option: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", (err) => reject(new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot listen on ${option} ${typeof where === "string" ? where : `${where.host}:${where.port}`}: ${messageOf(err)}`, { cause: err })));
    server.listen(where, () => resolve());
  });
}
