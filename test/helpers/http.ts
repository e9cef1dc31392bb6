/**
 * HTTP clients for tests: a convenient request over node:http(s), and a raw
 * exchange of bytes for malformed requests.
 *
 * @module
 */
import { request as httpRequest, type Agent, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import type { Readable } from "node:stream";
import type { ConnectionOptions } from "node:tls";

/** A response, body read completely. */
export interface TestResponse {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
}

/** What to request. */
export interface TestRequest {
  port: number;
  /** Host header (the gateway routes by it). */
  host: string;
  path?: string;
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: Buffer | string | Readable;
  agent?: Agent | false;
  /** TLS options; the request goes over HTTPS when given. */
  tls?: ConnectionOptions;
  /** Send it over this UNIX socket instead of the port. */
  socketPath?: string;
}

/** Sends one request to 127.0.0.1 and reads the whole response. */
export function request(r: TestRequest): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const options = {
      host: "127.0.0.1",
      port: r.port,
      path: r.path ?? "/",
      method: r.method ?? "GET",
      headers: { Host: r.host, ...r.headers },
      agent: r.agent ?? false,
      ...(r.tls ? { ...r.tls, servername: r.host.split(":")[0] } : {}),
      ...(r.socketPath === undefined ? {} : { socketPath: r.socketPath }),
    };
    const req = (r.tls ? httpsRequest : httpRequest)(options, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body, text: body.toString("utf8") });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    const body = r.body;
    if (body === undefined) req.end();
    else if (typeof body === "string" || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

/** How a raw exchange ends besides the server closing: when `until` holds for what came back, or after `timeoutMs`. */
export interface RawExchangeOptions {
  /** Stop as soon as this holds for the text received so far. */
  until?: (text: string) => boolean;
  /** A failure guard: give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Half-close the connection after writing. */
  halfClose?: boolean;
}

/**
 * Writes `bytes` to 127.0.0.1:`port` (then half-closes, with `halfClose`) and
 * collects everything that comes back until the server closes, `until` holds
 * or `timeoutMs` passes; `timedOut` tells whether the guard ended it.
 */
export function rawExchange(port: number, bytes: string | Buffer, options: RawExchangeOptions = {}): Promise<{ text: string; timedOut: boolean }> {
  const { until, timeoutMs = 30_000, halfClose = false } = options;
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let done = false;
    const text = (): string => Buffer.concat(chunks).toString("latin1");
    const finish = (timedOut: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text: text(), timedOut });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      if (until?.(text())) finish(false);
    });
    socket.on("close", () => finish(false));
    socket.on("error", () => finish(false));
    const data = typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes;
    if (halfClose) socket.end(data);
    else socket.write(data);
  });
}

/** The status code of the first response in a raw exchange, or 0. */
export function statusOf(text: string): number {
  const m = /^HTTP\/1\.[01] ([0-9]{3})/.exec(text);
  return m ? Number(m[1]) : 0;
}
