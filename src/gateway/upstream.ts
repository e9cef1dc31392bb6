/**
 * One HTTP/1.1 connection to an app socket: writes a request head, parses the
 * response with {@link parseResponseHead} and {@link ChunkedDecoder}, streams the
 * body to an {@link ExchangeHandler} with backpressure, and hands itself back to
 * its pool when the connection can carry another request.
 *
 * Listeners are bound once per connection, not per request. Reads bypass
 * the socket's stream machinery (net's `onread`): a response's bytes go
 * straight to the parser, without a stream event and a deferred read-ahead
 * per read. Heads and small responses are read into one buffer that all app
 * connections share, since nothing of them is kept past the read (see
 * {@link SHARED_VIEW_LIMIT}); a body that takes more reads is read into
 * buffers of its own, which the browser's socket may keep queued. A
 * connection for an upgrade request streams as usual, as it becomes a
 * tunnel.
 *
 * @module
 */
import { connect, type NetConnectOpts, type Socket } from "node:net";
import { clock, everySecond } from "../lib/sweeper.ts";
import { BadResponseError, UpstreamError } from "../lib/errors.ts";
import { ChunkedDecoder, headText, MAX_RESPONSE_HEAD, parseResponseHead, type Framing, type ResponseHead } from "./http1.ts";

/** What a request in flight is told about its response. */
export interface ExchangeHandler {
  /** The response head arrived (1xx interim responses are skipped). */
  onResponseHead(head: ResponseHead): void;
  /**
   * Body bytes, valid only during the call when at most {@link SHARED_VIEW_LIMIT}
   * long; return false to stop reading until {@link Upstream.resume}.
   */
  onResponseData(chunk: Buffer): boolean;
  /** The body ended. */
  onResponseEnd(): void;
  /** The bytes of one read were all handed over, the response not yet complete: what waits to go out with them is due now. */
  onReadEnd?(): void;
  /** The app socket can take more request body after a write returned false. */
  onUpstreamDrain(): void;
  /**
   * The app agreed to switch protocols (101) on an upgrade request: the
   * connection is the handler's now, with `rest` already read from it.
   */
  onUpgrade?(head: ResponseHead, socket: Socket, rest: Buffer): void;
  /**
   * The exchange failed. `retryable`: the connection was a reused one and
   * nothing came back, so the app may have closed it while idle.
   * `started`: the head was already delivered.
   */
  onUpstreamError(err: Error, retryable: boolean, started: boolean): void;
}

/** The pool side of an {@link Upstream}. */
export interface UpstreamOwner {
  /** The connection finished an exchange and may be reused. */
  release(upstream: Upstream): void;
  /** The connection is gone. */
  forget(upstream: Upstream): void;
  /** True when the idle connection is a spare: more idle connections than recent use needed are kept (see pool.ts). */
  isSpare(upstream: Upstream): boolean;
}

const HEAD = 0, BODY_LENGTH = 1, BODY_CHUNKED = 2, BODY_CLOSE = 3, IDLE = 4;

/**
 * How long a spare idle connection is kept, in ms. Each open connection is
 * an SSH channel, and OpenSSH walks every channel on each wake-up on both
 * ends of the tunnel: after a burst, 32 idle channels made every later lone
 * request take about a third longer until they closed (test/bench/RESULTS.md).
 */
export const SPARE_IDLE_MS = 5000;

/** Bytes of one read from an app socket. */
const READ_SIZE = 64 * 1024;

/**
 * Response body chunks of at most this many bytes may be views into the
 * read buffer that app connections share, valid only during
 * `onResponseData`: a handler copies what it keeps of them. Larger chunks
 * are the handler's to keep.
 */
export const SHARED_VIEW_LIMIT = 16 * 1024;

/** The buffer app connections read into while nothing they read is kept past the read. */
const sharedRead = Buffer.allocUnsafeSlow(READ_SIZE);

/** Time-outs of an upstream connection, in ms. */
export interface UpstreamTimeouts {
  /** Longest silence from the app while a request is in flight. */
  response: number;
  /** Longest time an unused connection stays open. */
  idle: number;
}

/** One connection to an app socket. */
export class Upstream {
  readonly socket: Socket;
  /** Exchanges completed on this connection. */
  served = 0;
  #owner: UpstreamOwner;
  #timeouts: UpstreamTimeouts;
  #handler: ExchangeHandler | null = null;
  #method = "GET";
  #phase = IDLE;
  #head: Buffer | null = null;
  #remaining = 0;
  #chunked = new ChunkedDecoder();
  #received = false;
  #started = false;
  #requestDone = false;
  #keepAlive = false;
  #upgrade = false;
  #idleMs: number;
  /** Coarse time of the last byte from the app, or of the request. */
  #lastActive = clock.now;
  #sink = (data: Buffer): void => this.#deliver(data);
  /** The buffer the current read landed in: the shared one, or one of this connection's own. */
  #readInto: Buffer | null = null;

  /** Opens a connection to `path`; `streaming` for an upgrade request, whose connection may become a tunnel. */
  constructor(path: string, owner: UpstreamOwner, timeouts: UpstreamTimeouts, streaming = false) {
    this.#owner = owner;
    this.#timeouts = timeouts;
    this.#idleMs = timeouts.idle;
    // An upload is relayed a browser read (up to 64 KiB) at a time, without a pause inside each
    // (a Duplex option that Socket passes on, missing from @types/node's connect options).
    this.socket = streaming
      ? connect({ path, writableHighWaterMark: 64 * 1024 } as NetConnectOpts)
      : connect({
        path,
        writableHighWaterMark: 64 * 1024,
        onread: { buffer: () => this.#nextReadBuffer(), callback: (size: number, buf: Uint8Array): boolean => this.#onRead(size, buf as Buffer) },
      } as NetConnectOpts);
    if (streaming) this.socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    this.socket.on("end", () => this.#onEnd());
    this.socket.on("error", (err) => this.#fail(err));
    this.socket.on("close", () => this.#onClose());
    this.socket.on("drain", () => this.#handler?.onUpstreamDrain());
    live.add(this);
    if (stopSweeping === null) stopSweeping = everySecond(sweepUpstreams);
  }

  /** Closes the connection when it is past its time limit (called by the sweeper). */
  expire(now: number): void {
    const silent = now - this.#lastActive;
    if (this.#handler !== null) {
      if (silent > this.#timeouts.response) this.#fail(new UpstreamError("ETIMEDOUT", "app did not answer in time"));
    } else if (silent > this.#idleMs || (silent > SPARE_IDLE_MS && this.#owner.isSpare(this))) {
      this.socket.destroy();
    }
  }

  /** True while an exchange is in flight. */
  get busy(): boolean {
    return this.#handler !== null;
  }

  /**
   * Sends a request head; the body, if any, follows with {@link write} and
   * {@link endRequest}. With `upgrade`, a 101 answer hands the connection to
   * the handler's `onUpgrade`.
   */
  request(head: string, method: string, handler: ExchangeHandler, upgrade = false): void {
    this.#handler = handler;
    this.#method = method;
    this.#upgrade = upgrade;
    this.#phase = HEAD;
    this.#head = null;
    this.#received = false;
    this.#started = false;
    this.#requestDone = false;
    this.#lastActive = clock.now;
    // The previous exchange may have ended while reading was paused for a slow browser.
    if (this.socket.isPaused()) this.socket.resume();
    this.socket.write(head, "latin1");
  }

  /** Writes request body bytes; false means wait for `onUpstreamDrain`. */
  write(chunk: Buffer | string): boolean {
    // A long upload is activity too: the app may only answer at its end.
    this.#lastActive = clock.now;
    return this.socket.write(chunk);
  }

  /** The request (head and body) has been written completely. */
  endRequest(): void {
    this.#requestDone = true;
  }

  /** Resumes reading after `onResponseData` returned false. */
  resume(): void {
    this.socket.resume();
  }

  /** Ends the connection now (the browser went away, or the exchange was abandoned). */
  destroy(): void {
    this.#handler = null;
    this.socket.destroy();
  }

  /**
   * Ends the connection because its route went away: an exchange in flight
   * fails (502, or a cut if the response had started) instead of waiting.
   */
  abort(reason: string): void {
    this.#fail(new UpstreamError("EGONE", reason));
  }

  /** Marks the connection idle in a pool, from now. */
  park(): void {
    this.#lastActive = clock.now;
  }

  /** Where the next read goes: a buffer of this connection's own while a body takes more reads, else the shared one. */
  #nextReadBuffer(): Buffer {
    const bulk = this.#handler !== null && this.#phase !== HEAD && this.#phase !== IDLE;
    return bulk ? Buffer.allocUnsafeSlow(READ_SIZE) : sharedRead;
  }

  /** A read (net's `onread`): `size` bytes at the start of `buf`. Reading goes on unless paused (backpressure pauses the socket). */
  #onRead(size: number, buf: Buffer): boolean {
    this.#readInto = buf;
    this.#onData(buf.subarray(0, size));
    this.#readInto = null;
    return true;
  }

  #onData(chunk: Buffer): void {
    const handler = this.#handler;
    if (handler === null) {
      // Bytes nobody asked for: the connection is out of step.
      this.socket.destroy();
      return;
    }
    this.#received = true;
    this.#lastActive = clock.now;
    try {
      this.#consume(chunk, 0);
      this.#handler?.onReadEnd?.();
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  #consume(chunk: Buffer, start: number): void {
    let offset = start;
    while (offset < chunk.length && this.#handler !== null) {
      switch (this.#phase) {
        case HEAD:
          offset = this.#readHead(chunk, offset);
          break;
        case BODY_LENGTH: {
          const take = Math.min(this.#remaining, chunk.length - offset);
          this.#remaining -= take;
          const slice = offset === 0 && take === chunk.length ? chunk : chunk.subarray(offset, offset + take);
          offset += take;
          this.#deliver(slice);
          if (this.#remaining === 0) this.#bodyDone(offset < chunk.length);
          break;
        }
        case BODY_CHUNKED: {
          const end = this.#chunked.decode(chunk, offset, this.#sink);
          if (end === -1) return;
          this.#bodyDone(end < chunk.length);
          return;
        }
        case BODY_CLOSE:
          this.#deliver(offset === 0 ? chunk : chunk.subarray(offset));
          return;
        default:
          // IDLE with bytes left: more than one response to one request.
          this.#keepAlive = false;
          return;
      }
    }
  }

  /** Reads head bytes from `chunk` at `offset`; returns the offset after what it used. */
  #readHead(chunk: Buffer, offset: number): number {
    const prior = this.#head;
    const buf = prior === null ? (offset === 0 ? chunk : chunk.subarray(offset)) : Buffer.concat([prior, chunk.subarray(offset)]);
    const text = headText(buf, 0, prior === null ? 0 : Math.max(0, prior.length - 3));
    if (text === null) {
      if (buf.length > MAX_RESPONSE_HEAD) throw new BadResponseError(`response head larger than ${MAX_RESPONSE_HEAD} bytes`);
      // The next read may overwrite the shared buffer: a part of a head waits in a copy.
      this.#head = prior === null && this.#readInto === sharedRead ? Buffer.from(buf) : buf;
      return chunk.length;
    }
    const end = text.length;
    this.#head = null;
    const used = end + 4 - (prior === null ? 0 : prior.length);
    const head = parseResponseHead(text, this.#method);
    if (head.status === 101 && this.#upgrade) {
      this.#handOver(head, buf.subarray(end + 4));
      return chunk.length;
    }
    if (head.status < 200) {
      // 1xx interim responses (100 Continue, 103 Early Hints) are not forwarded.
      return offset + used;
    }
    // A connection that carried an upgrade request is out of HTTP at the app's end: never reuse it.
    this.#keepAlive = head.keepAlive && !this.#upgrade;
    if (head.keepAliveTimeoutMs !== null) {
      // Close our side before the app would (the sweep runs once a second).
      this.#idleMs = Math.max(500, Math.min(this.#timeouts.idle, head.keepAliveTimeoutMs - 2000));
    }
    this.#started = true;
    this.#startBody(head.framing, head.length);
    this.#handler!.onResponseHead(head);
    // Bytes after a bodiless response's head would be served as the next response: never reuse the connection then.
    if (head.framing === "none") this.#bodyDone(offset + used < chunk.length);
    return offset + used;
  }

  /** Gives the connection to the upgrade handler: our listeners go, the pool forgets it. */
  #handOver(head: ResponseHead, rest: Buffer): void {
    const handler = this.#handler!;
    this.#handler = null;
    this.#started = true;
    for (const event of ["data", "end", "error", "close", "drain"]) this.socket.removeAllListeners(event);
    live.delete(this);
    this.#owner.forget(this);
    handler.onUpgrade!(head, this.socket, Buffer.from(rest));
  }

  #startBody(framing: Framing, length: number): void {
    switch (framing) {
      case "length":
        this.#phase = BODY_LENGTH;
        this.#remaining = length;
        break;
      case "chunked":
        this.#phase = BODY_CHUNKED;
        this.#chunked.reset();
        break;
      case "close":
        this.#phase = BODY_CLOSE;
        break;
      default:
        this.#phase = IDLE;
    }
  }

  #deliver(data: Buffer): void {
    if (data.length === 0) return;
    // A large chunk of the shared buffer is copied, so that the handler may keep it (see SHARED_VIEW_LIMIT).
    const chunk = data.length > SHARED_VIEW_LIMIT && this.#readInto === sharedRead ? Buffer.from(data) : data;
    if (this.#handler !== null && !this.#handler.onResponseData(chunk)) this.socket.pause();
  }

  /** The response body is complete; `extra`: bytes followed it. */
  #bodyDone(extra: boolean): void {
    this.#phase = IDLE;
    // A response that comes before the whole request was sent leaves the connection out of step.
    if (extra || !this.#requestDone) this.#keepAlive = false;
    this.#finish();
  }

  #finish(): void {
    const handler = this.#handler;
    if (handler === null) return;
    this.#handler = null;
    this.served++;
    // Reading may have been paused for a slow browser: resume, so that bytes arriving while idle are seen and refused.
    if (this.socket.isPaused()) this.socket.resume();
    if (this.#keepAlive && this.socket.writable && this.socket.readableLength === 0) this.#owner.release(this);
    else this.socket.destroy();
    handler.onResponseEnd();
  }

  #onEnd(): void {
    if (this.#handler !== null && this.#phase === BODY_CLOSE) {
      this.#keepAlive = false;
      this.#phase = IDLE;
      this.#requestDone = true;
      this.#finish();
      return;
    }
    if (this.#handler !== null) {
      this.#fail(new UpstreamError("EEMPTY", this.#started ? "app closed the connection in the middle of a response" : "app closed the connection without a response"));
      return;
    }
    this.socket.destroy();
  }

  #onClose(): void {
    live.delete(this);
    if (this.#handler !== null) this.#fail(new UpstreamError("EEMPTY", "app connection closed"));
    this.#owner.forget(this);
  }

  #fail(err: Error): void {
    const handler = this.#handler;
    this.#handler = null;
    this.socket.destroy();
    if (handler !== null) handler.onUpstreamError(err, this.served > 0 && !this.#received, this.#started);
  }
}

/** Every open app connection, for the sweeper. */
const live = new Set<Upstream>();
let stopSweeping: (() => void) | null = null;

function sweepUpstreams(now: number): void {
  for (const upstream of live) upstream.expire(now);
  if (live.size === 0 && stopSweeping !== null) {
    stopSweeping();
    stopSweeping = null;
  }
}
