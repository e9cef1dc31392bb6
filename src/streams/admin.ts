/**
 * The streams' admin API, with stream-conductor's verbs and JSON:
 * `GET /status`, `/getstreams`, `/createstream/<port>/<backend>`,
 * `/removestream/<port>`, `/hasstream/<port>`, `/getfreeport`, answering
 * `{"result": ..., "errors": ...}`. Never open: it listens on a UNIX socket
 * whose mode and group decide who may connect, or on a TCP address where
 * each request carries a bearer token. The TCP listener faces whoever can
 * reach it: it holds few connections, gives each little time, and closes
 * a request without the token at once, unread.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { promises as fs } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { ConductorError, isErrno, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { removeStaleSocket } from "../lib/socket_check.ts";
import { lookupGroupId } from "../lib/users.ts";
import { VERSION } from "../lib/version.ts";
import type { StreamRecord } from "../state/streams_file.ts";
import type { StreamSettings } from "./settings.ts";
import { checkPort, rangeSize } from "./validate.ts";

/** What the admin API works on: the gateway's streams (the registrar's stream side). */
export interface StreamDesk {
  readonly settings: StreamSettings;
  /** Every published stream, by port. */
  list(): StreamRecord[];
  get(port: number): StreamRecord | undefined;
  /** A port a new stream could have now, or null. */
  freePort(): number | null;
  /** Publishes an admin's stream (`name` null: `port-PORT`); throws `CONDUCTOR_ERR_STREAM_INVALID` (400) or `CONDUCTOR_ERR_STREAM_REFUSED` (409). */
  createAdmin(port: unknown, backend: unknown, name: unknown): Promise<StreamRecord>;
  /** Removes an admin's stream; throws `CONDUCTOR_ERR_NOT_FOUND` (404) or `CONDUCTOR_ERR_STREAM_REFUSED` (409). */
  removeAdmin(port: unknown): Promise<void>;
}

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

/** Connections the admin API holds at once, per listener. */
const MAX_CONNECTIONS = 32;
/** Time a request's head may take to arrive, in ms. */
const HEAD_TIMEOUT_MS = 10_000;
/** Time a whole request may take, in ms. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Refusals are logged at most this often, with their count since the last line, in ms. */
const REFUSAL_LOG_EVERY_MS = 10_000;

/** Starts the admin API on what `options` names; throws a `ConductorError` that says what is wrong. */
export async function startAdminApi(desk: StreamDesk, options: AdminOptions, logger: Logger): Promise<AdminApi> {
  const servers: Server[] = [];
  const refusals = refusalLog(logger);
  let port: number | null = null;
  try {
    if (options.socket !== undefined) {
      const { path, mode, group } = options.socket;
      const gid = group === undefined ? null : await lookupGroupId(group);
      await removeStaleSocket(path, "--admin-socket");
      const server = bounded(createServer((req, res) => void answer(desk, req, res, logger)));
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
      const server = bounded(createServer((req, res) => {
        if (bearerMatches(req.headers.authorization, token)) return void answer(desk, req, res, logger);
        refusals.count(req.socket.remoteAddress, "withoutToken");
        // Closed at once, the body unread: nobody without the token holds a connection.
        send(res, 401, { result: "error", errors: "Cannot serve the request: it needs 'Authorization: Bearer TOKEN' with the token of the gateway's --admin-token-file" }, { "WWW-Authenticate": "Bearer", Connection: "close" });
        res.once("finish", () => req.socket.destroySoon());
      }));
      server.on("drop", (data?: { remoteAddress?: string }) => refusals.count(data?.remoteAddress, "overConnectionCap"));
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
      refusals.stop();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      })));
      if (options.socket !== undefined) await fs.rm(options.socket.path, { force: true });
    },
  };
}

/** Gives `server` the admin API's caps: few connections, little time for a head or a request. */
function bounded(server: Server): Server {
  server.maxConnections = MAX_CONNECTIONS;
  server.headersTimeout = HEAD_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = 5_000;
  return server;
}

/** Why the admin API refused a caller, as its refusal log counts them: a request without the right token, or a connection over the cap. */
type Refusal = "withoutToken" | "overConnectionCap";

/**
 * Counts refused requests and connections: the first is logged at once, the
 * ones after it at most once per {@link REFUSAL_LOG_EVERY_MS}, with their
 * count by reason, so that a flood is reported however short, in few lines.
 */
function refusalLog(logger: Logger): { count(address: string | undefined, why: Refusal): void; stop(): void } {
  const counts = new Map<Refusal, number>();
  let last: string | undefined;
  let timer: NodeJS.Timeout | null = null;
  const report = (): void => {
    timer = null;
    if (counts.size === 0) return;
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    logger.info(`stream admin API: refused ${total} connection${total === 1 ? "" : "s"} since the last report`, { ...Object.fromEntries(counts), last });
    counts.clear();
    timer = setTimeout(report, REFUSAL_LOG_EVERY_MS).unref();
  };
  return {
    count(address, why) {
      counts.set(why, (counts.get(why) ?? 0) + 1);
      last = address;
      if (timer === null) report();
    },
    stop() {
      if (timer !== null) clearTimeout(timer);
    },
  };
}

/** Answers one admin request. */
async function answer(desk: StreamDesk, req: IncomingMessage, res: ServerResponse, logger: Logger): Promise<void> {
  if (req.method !== "GET") return send(res, 405, { result: "error", errors: "Cannot serve the request: the admin API answers GET only" }, { Allow: "GET" });
  const url = new URL(req.url ?? "/", "http://admin");
  const [verb, ...rest] = url.pathname.split("/").slice(1);
  try {
    switch (verb) {
      case "status": {
        const { first, last } = desk.settings.range;
        const streams = desk.list().length;
        // stream-conductor printed Python's range(); its end is exclusive.
        return send(res, 200, { version: VERSION, available_ports: `range(${first}, ${last + 1})`, range: { first, last }, streams, free: rangeSize(desk.settings.range) - streams });
      }
      case "getstreams":
        return send(res, 200, desk.list().map((s) => ({
          listen: s.port, proxy_pass: s.backend, owner: s.owner, name: s.name, created: s.created, ...(s.address === undefined ? {} : { address: s.address }),
        })));
      case "hasstream":
        return send(res, 200, { result: desk.get(portOf(rest, desk)) === undefined ? "false" : "true" });
      case "getfreeport": {
        const port = desk.freePort();
        return port === null ? send(res, 409, { result: "error", errors: "Cannot find a free port: every port of the range is taken" }) : send(res, 200, { result: "ok", port });
      }
      case "createstream": {
        // The backend is the rest of the path: a unix: backend holds slashes. It is checked first: bad input is a 400 whatever the port.
        const backend = decodeURIComponent(rest.slice(1).join("/"));
        await desk.createAdmin(rest[0], backend, url.searchParams.get("name"));
        return send(res, 200, { result: "ok", errors: "" });
      }
      case "removestream":
        await desk.removeAdmin(rest.length === 1 ? rest[0] : rest.join("/"));
        return send(res, 200, { result: "ok", errors: "" });
      default:
        return send(res, 404, { result: "error", errors: `Cannot serve ${url.pathname.slice(0, 100)}: the admin API knows /status, /getstreams, /createstream/PORT/BACKEND, /removestream/PORT, /hasstream/PORT and /getfreeport` });
    }
  } catch (err) {
    const code = err instanceof ConductorError ? err.code : "";
    const status = code === "CONDUCTOR_ERR_STREAM_INVALID" || err instanceof URIError ? 400
      : code === "CONDUCTOR_ERR_STREAM_REFUSED" ? 409 : code === "CONDUCTOR_ERR_NOT_FOUND" ? 404 : 500;
    if (status === 500) logger.error(`stream admin API: ${messageOf(err)}`, { url: url.pathname });
    return send(res, status, { result: "error", errors: messageOf(err) });
  }
}

/** The port of a path's one remaining segment, checked against the range. */
function portOf(rest: string[], desk: StreamDesk): number {
  return checkPort(rest.length === 1 ? rest[0] : rest.join("/"), desk.settings.range);
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
