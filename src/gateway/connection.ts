/**
 * One browser connection, HTTP/1.1 on a raw socket (TCP or TLS): reads
 * request heads with {@link parseRequestHead}, hands each request to the
 * front end, streams its body raw (framing checked) to whoever reads it,
 * writes the response, and keeps the connection for the next request.
 * Requests are answered one at a time, in order; pipelined ones wait in the
 * buffer. Time limits are checked by {@link ConnectionSet}'s coarse sweeper.
 *
 * @module
 */
import type { Socket } from "node:net";
import { ChunkedDecoder } from "./http1.ts";
import { clock, everySecond } from "./sweeper.ts";
import { pageBody, pageHead } from "./pages.ts";
import { hasBody, isRefusal, MAX_REQUEST_HEAD, parseRequestHead, type RequestHead } from "./request_head.ts";

/** Receives the body of a request. */
export interface BodySink {
  /** Raw body bytes (chunked framing included when the request is chunked); false pauses the browser. */
  data(chunk: Buffer): boolean;
  /** The body is complete. */
  end(): void;
  /** The body is malformed or the browser went away before it ended. */
  abort(reason: string): void;
}

/** What the front end does with a request. */
export interface RequestHandler {
  /** A request head arrived; the handler answers through `conn`. */
  onRequest(conn: BrowserConnection, head: RequestHead): void;
  /** A request was refused before routing (malformed); for counters and logs. */
  onRefused(status: number, reason: string): void;
}

/** Time limits of browser connections, in ms. */
export interface ConnectionTimeouts {
  /** Longest time from the first byte of a request head to its end (408). */
  headers: number;
  /** Longest idle time between requests. */
  keepAlive: number;
  /** Longest silence while a request body is being received (408). */
  body: number;
}

const READ_HEAD = 0, READ_BODY = 1, WAIT = 2, DONE = 3;
const CRLFCRLF = Buffer.from("\r\n\r\n");
/** Bytes kept for pipelined requests before reading pauses. */
const MAX_BUFFERED = 4 * MAX_REQUEST_HEAD;

/** A browser connection. */
export class BrowserConnection {
  readonly socket: Socket;
  readonly secure: boolean;
  /** Coarse time of the last byte read or of the last request. */
  lastActive = clock.now;
  /** Coarse time the current head started to arrive, or 0. */
  headStart = 0;
  /** Called when the connection closes while a request is in progress. */
  onAbort: (() => void) | null = null;
  #handler: RequestHandler;
  #owner: ConnectionSet;
  #state = READ_HEAD;
  #buf: Buffer | null = null;
  #scan = 0;
  #head: RequestHead | null = null;
  #remaining = 0;
  #decoder: ChunkedDecoder | null = null;
  #sink: BodySink | null = null;
  #bodyDone = true;
  #responding = false;
  #closeAfter = false;

  constructor(socket: Socket, secure: boolean, handler: RequestHandler, owner: ConnectionSet) {
    this.socket = socket;
    this.secure = secure;
    this.#handler = handler;
    this.#owner = owner;
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", () => socket.destroy());
    socket.on("end", () => this.#onEnd());
    socket.on("close", () => this.#onClose());
  }

  /** True while a request is being read or answered. */
  get busy(): boolean {
    return this.#state !== READ_HEAD && this.#state !== DONE;
  }

  /** True when reading a request body. */
  get readingBody(): boolean {
    return this.#state === READ_BODY;
  }

  /** True when reading a head (some bytes of it arrived). */
  get readingHead(): boolean {
    return this.#state === READ_HEAD && this.headStart !== 0;
  }

  /** The connection will close after the current response. */
  get closing(): boolean {
    return this.#closeAfter || (this.#head?.close ?? false) || !this.#bodyDone;
  }

  /** Receives the current request's body; buffered bytes are delivered at once. */
  readBody(sink: BodySink): void {
    this.#sink = sink;
    if (this.#state === READ_BODY && this.#buf !== null) {
      const buf = this.#buf;
      this.#buf = null;
      this.#feedBody(buf, 0);
    }
  }

  /** Resumes reading after a sink returned false. */
  resumeBody(): void {
    if (this.#state === READ_BODY) this.socket.resume();
  }

  /** Starts the response: `head` is the status line and fields, ending with the empty line (latin1). */
  writeHead(head: string): void {
    this.#responding = true;
    // Head and the first body bytes, usually in the same tick, go out in one write.
    this.socket.cork();
    this.socket.write(head, "latin1");
    process.nextTick(uncork, this.socket);
  }

  /** Writes response body bytes; false means wait for the socket's drain. */
  write(chunk: Buffer | string): boolean {
    return this.socket.write(chunk);
  }

  /** The response is complete: closes, or goes on with the next request. */
  endResponse(): void {
    if (this.#state === DONE) return;
    this.#responding = false;
    this.onAbort = null;
    if (this.closing) {
      this.#state = DONE;
      this.socket.end();
      return;
    }
    this.#state = READ_HEAD;
    this.#head = null;
    this.#sink = null;
    this.lastActive = clock.now;
    // resume() on a flowing stream still costs a tick: only when paused.
    if (this.socket.isPaused()) this.socket.resume();
    if (this.#buf !== null) this.#readHeads();
  }

  /** Answers with the gateway's page for `status`, then closes when `close` or when the body is unread. */
  sendPage(status: number, close = false): void {
    if (close) this.#closeAfter = true;
    if (!this.#bodyDone) this.#closeAfter = true;
    const body = pageBody(status);
    const head = pageHead(status, body.length, this.closing);
    this.writeHead(head);
    if (this.#head?.method !== "HEAD") this.socket.write(body);
    this.endResponse();
  }

  /** Answers with a small response of the gateway's own (status, auth redirect). */
  respond(status: number, reason: string, fields: Array<[string, string | number]>, body: string): void {
    if (!this.#bodyDone) this.#closeAfter = true;
    let head = `HTTP/1.1 ${status} ${reason}\r\n`;
    for (const [k, v] of fields) head += `${k}: ${v}\r\n`;
    head += `Content-Length: ${Buffer.byteLength(body)}\r\n${this.closing ? "Connection: close\r\n" : ""}\r\n`;
    this.writeHead(head);
    if (this.#head?.method !== "HEAD") this.socket.write(body);
    this.endResponse();
  }

  /** Marks the connection to close after the current response. */
  closeAfterResponse(): void {
    this.#closeAfter = true;
  }

  /** Hands the socket over (a switched protocol); returns it with the bytes read past the request. */
  takeOver(): { socket: Socket; rest: Buffer } {
    this.#state = DONE;
    this.onAbort = null;
    this.#owner.delete(this);
    for (const event of ["data", "error", "end", "close"]) this.socket.removeAllListeners(event);
    const rest = this.#buf ?? Buffer.alloc(0);
    this.#buf = null;
    return { socket: this.socket, rest };
  }

  /** Ends the connection now. */
  destroy(): void {
    this.socket.destroy();
  }

  /** Closes an idle connection, or marks a busy one to close after its response. */
  closeWhenIdle(): void {
    if (this.busy) this.#closeAfter = true;
    else this.socket.destroy();
  }

  #onData(chunk: Buffer): void {
    this.lastActive = clock.now;
    if (this.#state === READ_BODY) {
      this.#feedBody(chunk, 0);
      return;
    }
    if (this.#state === DONE) return;
    this.#buf = this.#buf === null ? chunk : Buffer.concat([this.#buf, chunk]);
    if (this.#state === READ_HEAD) this.#readHeads();
    else if (this.#buf.length > MAX_BUFFERED) this.socket.pause();
  }

  /** Parses the next head from the buffer, if it is complete. */
  #readHeads(): void {
    let buf = this.#buf!;
    // RFC 9112 2.2: empty lines before a request line are ignored.
    let skip = 0;
    while (skip + 1 < buf.length && buf[skip] === 13 && buf[skip + 1] === 10) skip += 2;
    if (skip > 0) {
      buf = buf.subarray(skip);
      this.#buf = buf.length > 0 ? buf : null;
      if (this.#buf === null) return;
    }
    if (this.headStart === 0) this.headStart = clock.now;
    const end = buf.indexOf(CRLFCRLF, this.#scan);
    if (end === -1 || end > MAX_REQUEST_HEAD) {
      if (end > MAX_REQUEST_HEAD || buf.length > MAX_REQUEST_HEAD + 3) return this.#refuse(431, "request head too large");
      this.#scan = Math.max(0, buf.length - 3);
      return;
    }
    const text = buf.toString("latin1", 0, end);
    const rest = end + 4 < buf.length ? buf.subarray(end + 4) : null;
    this.#buf = rest;
    this.#scan = 0;
    this.headStart = 0;
    const head = parseRequestHead(text);
    if (isRefusal(head)) return this.#refuse(head.status, head.reason);
    this.#head = head;
    this.#sink = null;
    this.#bodyDone = !hasBody(head);
    if (this.#bodyDone) {
      this.#state = WAIT;
      if (rest !== null) this.socket.pause();
    } else {
      this.#state = READ_BODY;
      this.#remaining = head.chunked ? 0 : head.contentLength;
      this.#decoder = head.chunked ? (this.#decoder ?? new ChunkedDecoder()) : null;
      this.#decoder?.reset();
    }
    this.#handler.onRequest(this, head);
    // The handler may have answered already, or asked for the body (which drains the buffer).
    if (this.#state === READ_BODY && this.#buf !== null && this.#sink === null && !this.#responding) {
      // Nobody reads this body yet: it stays buffered (bounded) until readBody().
      if (this.#buf.length > MAX_BUFFERED) this.socket.pause();
    }
  }

  #feedBody(chunk: Buffer, offset: number): void {
    let end: number;
    if (this.#decoder !== null) {
      try {
        end = this.#decoder.decode(chunk, offset, ignore);
      } catch {
        return this.#badBody("malformed chunked body");
      }
    } else {
      const take = Math.min(this.#remaining, chunk.length - offset);
      this.#remaining -= take;
      end = this.#remaining === 0 ? offset + take : -1;
    }
    const stop = end === -1 ? chunk.length : end;
    if (stop > offset) {
      const slice = offset === 0 && stop === chunk.length ? chunk : chunk.subarray(offset, stop);
      if (this.#sink !== null) {
        if (!this.#sink.data(slice)) this.socket.pause();
      } else {
        this.#buf = this.#buf === null ? Buffer.from(slice) : Buffer.concat([this.#buf, slice]);
      }
    }
    if (end === -1) return;
    // The body is complete; what follows is the next request.
    this.#bodyDone = true;
    this.#state = WAIT;
    const rest = end < chunk.length ? chunk.subarray(end) : null;
    if (this.#sink !== null) {
      this.#buf = rest;
      this.#sink.end();
    } else if (rest !== null) {
      this.#buf = this.#buf === null ? rest : Buffer.concat([this.#buf, rest]);
    }
    if (this.#buf !== null) this.socket.pause();
  }

  #badBody(reason: string): void {
    const sink = this.#sink;
    this.#sink = null;
    this.#state = DONE;
    sink?.abort(reason);
    this.#handler.onRefused(400, reason);
    if (this.#responding) this.socket.destroy();
    else {
      this.#closeAfter = true;
      this.sendPage(400, true);
    }
  }

  #refuse(status: number, reason: string): void {
    this.#handler.onRefused(status, reason);
    this.#buf = null;
    this.#closeAfter = true;
    this.#state = WAIT;
    this.sendPage(status, true);
  }

  #onEnd(): void {
    // The browser finished sending. A request in progress is still answered; otherwise close.
    if (this.#state === READ_BODY) {
      const sink = this.#sink;
      this.#sink = null;
      sink?.abort("the browser closed the connection before the body ended");
      this.socket.destroy();
      return;
    }
    if (this.#state === WAIT) {
      this.#closeAfter = true;
      return;
    }
    this.socket.end();
  }

  #onClose(): void {
    this.#state = DONE;
    this.#owner.delete(this);
    const sink = this.#sink;
    this.#sink = null;
    sink?.abort("the browser closed the connection");
    const abort = this.onAbort;
    this.onAbort = null;
    abort?.();
  }
}

function uncork(socket: Socket): void {
  socket.uncork();
}

function ignore(): void {}

/** The browser connections of a server, with the sweeper that enforces their time limits. */
export class ConnectionSet {
  #all = new Set<BrowserConnection>();
  #stopSweeping: () => void;
  #timeouts: ConnectionTimeouts;
  #onTimeout: (status: number) => void;

  constructor(timeouts: ConnectionTimeouts, onTimeout: (status: number) => void) {
    this.#timeouts = timeouts;
    this.#onTimeout = onTimeout;
    this.#stopSweeping = everySecond((now) => this.#sweep(now));
  }

  /** Open connections. */
  get size(): number {
    return this.#all.size;
  }

  add(conn: BrowserConnection): void {
    this.#all.add(conn);
  }

  delete(conn: BrowserConnection): void {
    this.#all.delete(conn);
  }

  /** Closes idle connections now and the others after their current response. */
  closeIdle(): void {
    for (const conn of this.#all) conn.closeWhenIdle();
  }

  /** Ends every connection now, and stops sweeping. */
  destroyAll(): void {
    this.#stopSweeping();
    for (const conn of this.#all) conn.destroy();
  }

  #sweep(now: number): void {
    const t = this.#timeouts;
    for (const conn of this.#all) {
      if (conn.readingHead && now - conn.headStart > t.headers) {
        this.#onTimeout(408);
        conn.sendPage(408, true);
      } else if (!conn.busy && now - conn.lastActive > t.keepAlive) {
        conn.destroy();
      } else if (conn.readingBody && now - conn.lastActive > t.body) {
        this.#onTimeout(408);
        conn.destroy();
      }
    }
  }
}
