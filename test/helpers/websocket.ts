/**
 * A small RFC 6455 implementation for tests (Node 20 has no WebSocket client):
 * frame encoding and decoding, a client handshake over a raw socket, and an
 * echo server for test apps.
 *
 * @module
 */
import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** One decoded frame. */
export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** Encodes one frame; clients must mask. */
export function encodeFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const len = payload.length;
  const headerLen = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + (mask ? 4 : 0);
  const out = Buffer.allocUnsafe(headerLen + len);
  out[0] = 0x80 | opcode;
  let o = 2;
  if (len < 126) out[1] = len;
  else if (len < 65536) { out[1] = 126; out.writeUInt16BE(len, 2); o = 4; }
  else { out[1] = 127; out.writeBigUInt64BE(BigInt(len), 2); o = 10; }
  if (mask) {
    out[1] |= 0x80;
    const key = randomBytes(4);
    key.copy(out, o);
    o += 4;
    for (let i = 0; i < len; i++) out[o + i] = payload[i] ^ key[i & 3];
  } else {
    payload.copy(out, o);
  }
  return out;
}

/** Incremental frame decoder. */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns the frames completed by them. */
  push(chunk: Buffer): Frame[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const frames: Frame[] = [];
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) break;
      let len = b[1] & 0x7f;
      let o = 2;
      if (len === 126) { if (b.length < 4) break; len = b.readUInt16BE(2); o = 4; }
      else if (len === 127) { if (b.length < 10) break; len = Number(b.readBigUInt64BE(2)); o = 10; }
      const masked = (b[1] & 0x80) !== 0;
      const need = o + (masked ? 4 : 0) + len;
      if (b.length < need) break;
      const payload = Buffer.from(b.subarray(o + (masked ? 4 : 0), need));
      if (masked) {
        const key = b.subarray(o, o + 4);
        for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
      }
      frames.push({ fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, payload });
      this.#buf = b.subarray(need);
    }
    return frames;
  }
}

/** Answers a websocket handshake on `socket` and echoes every message back. */
export function acceptEchoSocket(req: IncomingMessage, socket: Duplex): void {
  const key = req.headers["sec-websocket-key"];
  if (typeof key !== "string") {
    socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    return;
  }
  const accept = createHash("sha1").update(key + GUID).digest("base64");
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  const reader = new FrameReader();
  let parts: Buffer[] = [];
  let opcode = 1;
  socket.on("data", (chunk: Buffer) => {
    for (const frame of reader.push(chunk)) {
      if (frame.opcode === 8) {
        socket.end(encodeFrame(8, frame.payload, false));
        return;
      }
      if (frame.opcode === 9) {
        socket.write(encodeFrame(10, frame.payload, false));
        continue;
      }
      if (frame.opcode !== 0) opcode = frame.opcode;
      parts.push(frame.payload);
      if (frame.fin) {
        socket.write(encodeFrame(opcode, Buffer.concat(parts), false));
        parts = [];
      }
    }
  });
  socket.on("error", () => socket.destroy());
  socket.on("end", () => socket.end());
}

/** A connected websocket client. */
export interface WsClient {
  /** The handshake response head. */
  response: string;
  send(data: Buffer | string): void;
  /** Sends a ping frame (a keep-alive, no message). */
  ping(data?: string): void;
  /** Pong frames received so far. */
  readonly pongs: number;
  /** The next complete message. */
  receive(): Promise<Buffer>;
  close(): void;
}

/** Where and how a websocket client connects. */
export interface WsTarget {
  /** TCP port on 127.0.0.1, or 0 with `socketPath`. */
  port: number;
  /** A UNIX socket to connect to instead of the port. */
  socketPath?: string;
  host: string;
  path?: string;
  headers?: Record<string, string>;
  tls?: ConnectionOptions;
}

/**
 * Opens a websocket; resolves with the client after a 101, rejects with the
 * response head (e.g. "HTTP/1.1 403 Forbidden ...") otherwise.
 */
export function openWebSocket(target: WsTarget): Promise<WsClient> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString("base64");
    const socket: Socket = target.tls
      ? tlsConnect({ port: target.port, host: "127.0.0.1", servername: target.host.split(":")[0], ...target.tls })
      : target.socketPath !== undefined ? connect(target.socketPath) : connect(target.port, "127.0.0.1");
    let head = "GET " + (target.path ?? "/") + " HTTP/1.1\r\nHost: " + target.host +
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n";
    for (const [k, v] of Object.entries(target.headers ?? {})) head += `${k}: ${v}\r\n`;
    socket.write(head + "\r\n");
    let buf: Buffer = Buffer.alloc(0);
    const reader = new FrameReader();
    const messages: Buffer[] = [];
    const waiting: Array<{ resolve: (b: Buffer) => void; reject: (e: Error) => void }> = [];
    let closed = false;
    socket.on("close", () => {
      closed = true;
      for (const w of waiting.splice(0)) w.reject(new Error("websocket closed"));
    });
    let parts: Buffer[] = [];
    let open = false;
    let pongs = 0;
    const onFrames = (frames: Frame[]): void => {
      for (const f of frames) {
        if (f.opcode === 8) { socket.end(); continue; }
        if (f.opcode === 10) pongs++;
        if (f.opcode === 9 || f.opcode === 10) continue;
        parts.push(f.payload);
        if (!f.fin) continue;
        const msg = Buffer.concat(parts);
        parts = [];
        const w = waiting.shift();
        if (w) w.resolve(msg); else messages.push(msg);
      }
    };
    socket.on("data", (chunk: Buffer) => {
      if (open) return onFrames(reader.push(chunk));
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end === -1) return;
      const response = buf.subarray(0, end).toString("latin1");
      if (!response.startsWith("HTTP/1.1 101")) {
        socket.destroy();
        reject(Object.assign(new Error(response.split("\r\n")[0]), { response }));
        return;
      }
      const expected = createHash("sha1").update(key + GUID).digest("base64");
      if (!response.toLowerCase().includes(`sec-websocket-accept: ${expected.toLowerCase()}`)) {
        socket.destroy();
        reject(new Error("wrong Sec-WebSocket-Accept"));
        return;
      }
      open = true;
      resolve({
        response,
        send: (data) => socket.write(encodeFrame(typeof data === "string" ? 1 : 2, Buffer.from(data), true)),
        ping: (data = "") => socket.write(encodeFrame(9, Buffer.from(data), true)),
        get pongs() {
          return pongs;
        },
        receive: () => new Promise((res, rej) => {
          const m = messages.shift();
          if (m) return res(m);
          if (closed) return rej(new Error("websocket closed"));
          waiting.push({ resolve: res, reject: rej });
        }),
        close: () => { socket.end(encodeFrame(8, Buffer.alloc(0), true)); },
      });
      const rest = buf.subarray(end + 4);
      if (rest.length > 0) onFrames(reader.push(rest));
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error("connection closed before the handshake completed")));
  });
}
