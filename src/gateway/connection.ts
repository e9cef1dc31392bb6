/**
 * One browser connection, HTTP/1.1 on a raw socket (TCP or TLS): reads
 * request heads with {@link parseRequestHead}, hands each request to the
 * front end, streams its body raw (framing checked) to whoever reads it,
 * writes the response, and keeps the connection for the next request.
 *
 * Requests are answered one at a time, in order; pipelined ones wait in the
 * buffer, and the next one is only read once the previous response has been
 * taken by the socket. Time limits are checked by {@link ConnectionSet}'s
 * sweep once a second. A connection that is done (a refused request, or one
 * that asked to close) half-closes and discards what still arrives, for up
 * to {@link LINGER_MS} and {@link LINGER_BYTES}, so that the browser reads
 * the last response rather than a reset; it closes at once when the browser
 * does.
 *
 * @module
 */
import type { Socket } from "node:net";
import { AuthMemo } from "./auth.ts";
import type { ForwardedFacts } from "./forward_head.ts";
import { ChunkedDecoder, headText } from "./http1.ts";
import { dateField, pageBody, pageHead } from "./pages.ts";
import { hasBody, isRefusal, MAX_REQUEST_HEAD, parseRequestHead, type RequestHead } from "./request_head.ts";
import { clock, everySecond } from "../lib/sweeper.ts";
import { SHARED_VIEW_LIMIT } from "./upstream.ts";

/** Receives the body of a request. */
export interface BodySink {
  /** Raw body bytes (chunked framing included when the request is chunked); false pauses the browser. */
  data(chunk: Buffer): boolean;
  /** The body is complete. */
  end(): void;
  /** The body is malformed or the browser went away before it ended. */
  abort(reason: string): void;
}

/** Whoever answers the request in progress, told when the browser goes away first. */
export interface Answering {
  /** The browser connection closed before the response was complete. */
  browserGone(): void;
}

/** What the front end does with requests. */
export interface RequestHandler {
  /** A request head arrived; the handler answers through `conn`. */
  onRequest(conn: BrowserConnection, head: RequestHead): void;
  /** A request dispatched by `onRequest` is over: answered, abandoned or upgraded. */
  onSettled(): void;
  /** A request was refused as malformed: before dispatch (`dispatched` false) or in its body. */
  onRefused(status: number, reason: string, dispatched: boolean): void;
}

/** Time limits of browser connections, in ms. */
export interface ConnectionTimeouts {
  /** Longest time from the first byte of a request head to its end (408). */
  headers: number;
  /** Longest idle time between requests. */
  keepAlive: number;
  /** Longest silence while a request body is being received. */
  body: number;
}

const READ_HEAD = 0, READ_BODY = 1, WAIT = 2, DONE = 3;
/** Bytes kept for pipelined requests before reading pauses. */
const MAX_BUFFERED = 4 * MAX_REQUEST_HEAD;
/** How long a finished connection keeps reading (and discarding) before it closes, in ms. */
const LINGER_MS = 5000;
/** How much a finished connection reads (and discards) before it closes. */
const LINGER_BYTES = 1024 * 1024;

/** A browser connection. */
export class BrowserConnection {
  readonly socket: Socket;
  /** How the browser came: its address and protocol, for the X-Forwarded fields. */
  readonly facts: ForwardedFacts;
  /** The token this connection last proved (see {@link AuthMemo}). */
  readonly auth = new AuthMemo();
  /** Coarse time of the last byte read or of the last response. */
  lastActive = clock.now;
  /** Coarse time the current head started to arrive, or 0. */
  headStart = 0;
  /** Coarse time the connection finished, or 0. */
  doneAt = 0;
  /** Told when the connection closes while a request is in progress. */
  answering: Answering | null = null;
  #handler: RequestHandler;
  #owner: ConnectionSet;
  #state = READ_HEAD;
  #buf: Buffer | null = null;
  #scan = 0;
  #parsing = false;
  #head: RequestHead | null = null;
  #inFlight = false;
  #remaining = 0;
  #bodySeen = 0;
  #decoder: ChunkedDecoder | null = null;
  #sink: BodySink | null = null;
  #bodyDone = true;
  #responding = false;
  #closeAfter = false;
  /** Bytes discarded since the connection finished. */
  #dropped = 0;

  constructor(socket: Socket, facts: ForwardedFacts, handler: RequestHandler, owner: ConnectionSet) {
    this.socket = socket;
    this.facts = facts;
    this.#handler = handler;
    this.#owner = owner;
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", () => socket.destroy());
    socket.on("end", () => this.#onEnd());
    socket.on("close", () => this.#onClose());
  }

  /** True while a request is being read or answered. */
  get busy(): boolean {
    return this.#state === READ_BODY || this.#state === WAIT;
  }

  /** True when reading a request body. */
  get readingBody(): boolean {
    return this.#state === READ_BODY;
  }

  /** True when part of a head has arrived. */
  get readingHead(): boolean {
    return this.#state === READ_HEAD && this.headStart !== 0;
  }

  /** True once the connection only waits to close. */
  get done(): boolean {
    return this.#state === DONE;
  }

  /** The connection will close after the current response. */
  get closing(): boolean {
    return this.#closeAfter || (this.#head?.close ?? false) || !this.#bodyDone;
  }

  /** The Connection field the current response needs: close, keep-alive for HTTP/1.0, or none. */
  connectionField(): string {
    if (this.closing) return "Connection: close\r\n";
    return this.#head !== null && !this.#head.http11 ? "Connection: keep-alive\r\n" : "";
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

  /**
   * Starts the response: `head` is the status line and fields, ending with
   * the empty line (latin1); the first body bytes, if any, and `tail` go out
   * in the same write. False means wait for the socket's drain.
   */
  writeHead(head: string, body: Buffer | null = null, tail = ""): boolean {
    this.#responding = true;
    return writeJoined(this.socket, head, body, tail);
  }

  /** Writes response body bytes; false means wait for the socket's drain. */
  write(chunk: Buffer | string): boolean {
    return this.socket.write(chunk);
  }

  /** Writes response body bytes between framing (`prefix`, `suffix`, latin1) in one write; false means wait for drain. */
  writeFramed(prefix: string, chunk: Buffer, suffix: string): boolean {
    return writeJoined(this.socket, prefix, chunk, suffix);
  }

  /** The response is complete: closes, or goes on with the next request. */
  endResponse(): void {
    if (this.#state === DONE) return;
    this.#responding = false;
    this.answering = null;
    this.#settle();
    if (this.closing) return this.#finish();
    this.#state = READ_HEAD;
    this.#head = null;
    this.#sink = null;
    this.lastActive = clock.now;
    if (this.#buf !== null) {
      this.headStart = clock.now;
      this.#readHeads();
    } else {
      // The bytes after the last head were its body: no next head has started.
      this.headStart = 0;
      if (this.socket.isPaused()) this.socket.resume();
    }
  }

  /** Answers with the gateway's page for `status` (or `body`), then closes when `close` or when the body is unread. */
  sendPage(status: number, close = false, body = pageBody(status)): void {
    if (close || !this.#bodyDone) this.#closeAfter = true;
    this.writeHead(pageHead(status, body.length, this.connectionField()), this.#head?.method === "HEAD" ? null : body);
    this.endResponse();
  }

  /** Answers with a small response of the gateway's own (status, auth redirect). */
  respond(status: number, reason: string, fields: Array<[string, string | number]>, body: string): void {
    if (!this.#bodyDone) this.#closeAfter = true;
    let head = `HTTP/1.1 ${status} ${reason}\r\n${dateField()}`;
    for (const [k, v] of fields) head += `${k}: ${v}\r\n`;
    const bytes = Buffer.from(body);
    head += `Content-Length: ${bytes.length}\r\n${this.connectionField()}\r\n`;
    this.writeHead(head, this.#head?.method === "HEAD" ? null : bytes);
    this.endResponse();
  }

  /** Marks the connection to close after the current response. */
  closeAfterResponse(): void {
    this.#closeAfter = true;
  }

  /** Hands the socket over (a switched protocol); returns it with the bytes read past the request. */
  takeOver(): { socket: Socket; rest: Buffer } {
    this.#state = DONE;
    this.answering = null;
    this.#settle();
    this.#owner.delete(this);
    for (const event of ["data", "error", "end", "close"]) this.socket.removeAllListeners(event);
    this.#owner.holdTunnel(this.socket);
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
    const state = this.#state;
    if (state === DONE) {
      // A finished connection discards what still arrives, without counting it as activity, up to a bound.
      this.#dropped += chunk.length;
      if (this.#dropped > LINGER_BYTES) this.socket.destroy();
      return;
    }
    this.lastActive = clock.now;
    if (state === READ_BODY) {
      this.#feedBody(chunk, 0);
      return;
    }
    this.#buf = this.#buf === null ? chunk : Buffer.concat([this.#buf, chunk]);
    if (state === READ_HEAD) {
      // Any byte, empty lines included, starts the clock of the head.
      if (this.headStart === 0) this.headStart = clock.now;
      this.#readHeads();
    } else if (this.#buf.length > MAX_BUFFERED) {
      this.socket.pause();
    }
  }

  /**
   * Reads and dispatches the heads in the buffer, one after the other, as a
   * loop: a handler that answers at once comes back here through
   * endResponse(), which only lets this loop go on.
   */
  #readHeads(): void {
    if (this.#parsing) return;
    this.#parsing = true;
    try {
      while (this.#state === READ_HEAD && this.#buf !== null) {
        if (this.socket.writableNeedDrain) {
          // The browser is not reading its responses: read no more requests until it does.
          this.socket.pause();
          this.socket.once("drain", () => {
            if (this.#state !== READ_HEAD) return;
            this.socket.resume();
            this.#readHeads();
          });
          break;
        }
        if (!this.#readHead()) break;
      }
    } finally {
      this.#parsing = false;
    }
  }

  /** Reads one head from the buffer and dispatches it; false when it is not complete yet. */
  #readHead(): boolean {
    let buf = this.#buf!;
    // RFC 9112 2.2: empty lines before a request line are ignored.
    let skip = 0;
    while (skip + 1 < buf.length && buf[skip] === 13 && buf[skip + 1] === 10) skip += 2;
    if (skip > 0) {
      buf = buf.subarray(skip);
      this.#buf = buf.length > 0 ? buf : null;
      if (this.#buf === null) return false;
    }
    const text = headText(buf, 0, this.#scan);
    if (text === null || text.length > MAX_REQUEST_HEAD) {
      if (text !== null || buf.length > MAX_REQUEST_HEAD + 3) {
        this.#refuse(431, "request head too large");
        return true;
      }
      this.#scan = Math.max(0, buf.length - 3);
      return false;
    }
    const end = text.length;
    const rest = end + 4 < buf.length ? buf.subarray(end + 4) : null;
    this.#buf = rest;
    this.#scan = 0;
    this.headStart = rest === null ? 0 : clock.now;
    const head = parseRequestHead(text);
    if (isRefusal(head)) {
      this.#refuse(head.status, head.reason);
      return true;
    }
    const maxBody = this.#owner.maxBody;
    if (maxBody > 0 && head.contentLength > maxBody) {
      this.#refuse(413, `request body of ${head.contentLength} bytes, more than the limit of ${maxBody}`);
      return true;
    }
    this.#head = head;
    this.#sink = null;
    this.#bodyDone = !hasBody(head);
    if (this.#bodyDone) {
      this.#state = WAIT;
      if (rest !== null && rest.length > MAX_BUFFERED) this.socket.pause();
    } else {
      this.#state = READ_BODY;
      this.#bodySeen = 0;
      this.#remaining = head.chunked ? 0 : head.contentLength;
      this.#decoder = head.chunked ? (this.#decoder ?? new ChunkedDecoder()) : null;
      this.#decoder?.reset();
    }
    this.#inFlight = true;
    this.#handler.onRequest(this, head);
    return true;
  }

  #feedBody(chunk: Buffer, offset: number): void {
    let end: number;
    if (this.#decoder !== null) {
      try {
        end = this.#decoder.decode(chunk, offset, ignore);
      } catch {
        return this.#badBody("malformed chunked body", 400);
      }
    } else {
      const take = Math.min(this.#remaining, chunk.length - offset);
      this.#remaining -= take;
      end = this.#remaining === 0 ? offset + take : -1;
    }
    const stop = end === -1 ? chunk.length : end;
    this.#bodySeen += stop - offset;
    const maxBody = this.#owner.maxBody;
    if (maxBody > 0 && this.#bodySeen > maxBody) return this.#badBody(`request body over the limit of ${maxBody} bytes`, 413);
    if (stop > offset) {
      const slice = offset === 0 && stop === chunk.length ? chunk : chunk.subarray(offset, stop);
      if (this.#sink !== null) {
        if (!this.#sink.data(slice)) this.socket.pause();
      } else {
        // Nobody reads this body yet: it waits (bounded) for readBody().
        this.#buf = this.#buf === null ? Buffer.from(slice) : Buffer.concat([this.#buf, slice]);
        if (this.#buf.length > MAX_BUFFERED) this.socket.pause();
      }
    }
    if (end === -1) return;
    // The body is complete; what follows belongs to the next request.
    this.#bodyDone = true;
    this.#state = WAIT;
    const rest = end < chunk.length ? chunk.subarray(end) : null;
    const sink = this.#sink;
    if (sink !== null) {
      this.#buf = rest;
      sink.end();
    } else if (rest !== null) {
      this.#buf = this.#buf === null ? rest : Buffer.concat([this.#buf, rest]);
    }
  }

  /** The body cannot be taken (malformed, or too large): answer `status` if nothing was answered yet, and close. */
  #badBody(reason: string, status: number): void {
    const sink = this.#sink;
    this.#sink = null;
    sink?.abort(reason);
    this.#handler.onRefused(status, reason, true);
    if (this.#responding) {
      this.socket.destroy();
      return;
    }
    this.#buf = null;
    this.#bodyDone = true;
    this.#state = WAIT;
    this.sendPage(status, true);
  }

  #refuse(status: number, reason: string): void {
    this.#handler.onRefused(status, reason, false);
    this.#buf = null;
    this.#head = null;
    this.#state = WAIT;
    this.sendPage(status, true);
  }

  /** The connection is done: half-close, linger, then close (by the sweep, or when the browser closes). */
  #finish(): void {
    this.#state = DONE;
    this.doneAt = clock.now;
    this.#buf = null;
    if (this.socket.isPaused()) this.socket.resume();
    this.socket.end();
  }

  #settle(): void {
    if (!this.#inFlight) return;
    this.#inFlight = false;
    this.#handler.onSettled();
  }

  #onEnd(): void {
    // The browser finished sending (half-close).
    switch (this.#state) {
      case READ_BODY: {
        const sink = this.#sink;
        this.#sink = null;
        sink?.abort("the browser closed the connection before the body ended");
        this.socket.destroy();
        return;
      }
      case WAIT:
        // A request in progress is still answered; then the connection closes.
        this.#closeAfter = true;
        return;
      case DONE:
        this.socket.destroy();
        return;
      default:
        this.#finish();
    }
  }

  #onClose(): void {
    this.#state = DONE;
    this.#owner.delete(this);
    const sink = this.#sink;
    this.#sink = null;
    sink?.abort("the browser closed the connection");
    const answering = this.answering;
    this.answering = null;
    answering?.browserGone();
    this.#settle();
  }
}

/**
 * Bodies up to this size are copied beside their framing into one buffer;
 * larger ones are corked with it. A body chunk from an app that may be a
 * view into a shared read buffer is never kept (see {@link SHARED_VIEW_LIMIT}).
 */
const JOIN_LIMIT = SHARED_VIEW_LIMIT;

/**
 * Writes `prefix` (latin1), `body` and `suffix` (latin1) as one write, so
 * that a small response leaves in one segment with one call into the
 * socket. Returns write()'s answer: false means wait for drain.
 */
export function writeJoined(socket: Socket, prefix: string, body: Buffer | null, suffix: string): boolean {
  const size = body === null ? 0 : body.length;
  if (size === 0) return socket.write(prefix + suffix, "latin1");
  if (size <= JOIN_LIMIT) {
    const out = Buffer.allocUnsafe(prefix.length + size + suffix.length);
    const at = out.write(prefix, 0, "latin1");
    out.set(body!, at);
    if (suffix !== "") out.write(suffix, at + size, "latin1");
    return socket.write(out);
  }
  socket.cork();
  if (prefix !== "") socket.write(prefix, "latin1");
  let ok = socket.write(body!);
  if (suffix !== "") ok = socket.write(suffix, "latin1");
  socket.uncork();
  return ok;
}

function ignore(): void {}

/** The browser connections of a server, with the sweep that enforces their time limits. */
export class ConnectionSet {
  /** Largest request body accepted, in bytes; 0 for no limit. */
  readonly maxBody: number;
  #all = new Set<BrowserConnection>();
  /** Sockets handed over to a switched protocol (websockets): no time limits, but ended with the server. */
  #tunnels = new Set<Socket>();
  #stopSweeping: () => void;
  #timeouts: ConnectionTimeouts;
  #onTimeout: (status: number) => void;

  constructor(timeouts: ConnectionTimeouts, maxBody: number, onTimeout: (status: number) => void) {
    this.maxBody = maxBody;
    this.#timeouts = timeouts;
    this.#onTimeout = onTimeout;
    this.#stopSweeping = everySecond((now) => this.#sweep(now));
  }

  /** Open connections, websocket tunnels included. */
  get size(): number {
    return this.#all.size + this.#tunnels.size;
  }

  add(conn: BrowserConnection): void {
    this.#all.add(conn);
  }

  delete(conn: BrowserConnection): void {
    this.#all.delete(conn);
  }

  /** Keeps a socket that left HTTP (a websocket) until it closes, so that the server can end it. */
  holdTunnel(socket: Socket): void {
    this.#tunnels.add(socket);
    socket.once("close", () => this.#tunnels.delete(socket));
  }

  /** Closes idle connections and websocket tunnels (which never finish a response) now, the others after their current response. */
  closeIdle(): void {
    for (const conn of this.#all) conn.closeWhenIdle();
    for (const socket of this.#tunnels) socket.destroy();
  }

  /** Ends every connection now, and stops sweeping. */
  destroyAll(): void {
    this.#stopSweeping();
    for (const conn of this.#all) conn.destroy();
    for (const socket of this.#tunnels) socket.destroy();
  }

  #sweep(now: number): void {
    const t = this.#timeouts;
    for (const conn of this.#all) {
      if (conn.done) {
        if (now - conn.doneAt > LINGER_MS) conn.destroy();
      } else if (conn.readingHead) {
        if (now - conn.headStart > t.headers) {
          this.#onTimeout(408);
          conn.sendPage(408, true);
        }
      } else if (conn.readingBody) {
        if (now - conn.lastActive > t.body) {
          this.#onTimeout(408);
          conn.destroy();
        }
      } else if (!conn.busy && now - conn.lastActive > t.keepAlive) {
        conn.destroy();
      }
    }
  }
}
