/**
 * TCP streams in tests: a range of free gateway ports for one gateway
 * (test files run at once, so each takes its own), a gateway with streams
 * on it, and connections that send bytes and collect the answer.
 *
 * @module
 */
import { connect, type Socket } from "node:net";
import { bindProblem } from "../../src/streams/ports.ts";
import type { Cleanup } from "./cleanup.ts";
import { startGateway, type GatewayStart, type TestGateway } from "./gateway.ts";

/** A gateway with TCP streams on the ports `range` (`FIRST-LAST`), telling clients 127.0.0.1:PORT; `args` are added. */
export function startStreamGateway(t: Cleanup, range: string, args: string[] = [], options: Omit<GatewayStart, "args"> = {}): Promise<TestGateway> {
  return startGateway(t, { ...options, args: ["--port-range", range, "--stream-host", "127.0.0.1", ...args] });
}

/**
 * `size` consecutive ports that are free now, below the kernel's ephemeral
 * range (32768 and up), chosen at random so that parallel test files rarely meet.
 */
export async function freePortRange(size: number): Promise<{ first: number; last: number; text: string }> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const first = 12_000 + Math.floor(Math.random() * 2000) * 10;
    const ports = Array.from({ length: size }, (_, i) => first + i);
    if ((await Promise.all(ports.map(bindProblem))).every((p) => p === null)) {
      return { first, last: first + size - 1, text: `${first}-${first + size - 1}` };
    }
  }
  throw new Error(`no ${size} free consecutive ports found`);
}

/**
 * Sends `bytes` to 127.0.0.1:`port` and resolves with everything the other side sent until it closed, or until
 * what came back satisfies `until` (the connection is then closed).
 */
export function tcpExchange(port: number, bytes: string | Buffer, options: { until?: (got: Buffer) => boolean; timeoutMs?: number } = {}): Promise<Buffer> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1" });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no end of the answer on port ${port} within ${timeoutMs} ms`)); }, timeoutMs);
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      if (options.until?.(Buffer.concat(chunks))) socket.destroy();
    });
    socket.on("error", (err) => { clearTimeout(timer); reject(err); });
    socket.on("close", () => { clearTimeout(timer); resolve(Buffer.concat(chunks)); });
    socket.write(bytes);
  });
}

/**
 * Resolves with what 127.0.0.1:`port` sends (from `localAddress`, default
 * 127.0.0.1) after `bytes` and a half-close: nothing, when nginx finds no
 * stream behind the port and closes the connection.
 */
export function exchangeFrom(port: number, bytes: string, localAddress = "127.0.0.1"): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", localAddress });
    const chunks: Buffer[] = [];
    socket.on("connect", () => socket.end(bytes));
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", (err: NodeJS.ErrnoException) => err.code === "ECONNRESET" ? resolve(Buffer.concat(chunks)) : reject(err));
    socket.on("close", () => resolve(Buffer.concat(chunks)));
  });
}

/** A kept-alive HTTP connection to the test app behind a stream. */
export interface HeldConnection {
  /** Sends GET /hello on the same connection and resolves with the answer's head line. */
  hello(): Promise<string>;
  /** Resolves when the other side closes the connection. */
  readonly closed: Promise<void>;
  close(): void;
}

/** Opens a connection to 127.0.0.1:`port` and keeps it for requests to the test app. */
export async function holdConnection(port: number): Promise<HeldConnection> {
  const socket: Socket = connect({ port, host: "127.0.0.1" });
  await new Promise<void>((resolve, reject) => { socket.once("connect", resolve); socket.once("error", reject); });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.on("error", () => {});
  let text = "";
  socket.setEncoding("utf8");
  socket.on("data", (c: string) => { text += c; });
  return {
    closed,
    hello: () => new Promise((resolve, reject) => {
      text = "";
      const check = (): void => {
        const end = text.indexOf("\r\n\r\n");
        const length = /content-length: *(\d+)/i.exec(text);
        if (end !== -1 && length !== null && text.length >= end + 4 + Number(length[1])) {
          socket.off("data", check);
          socket.off("close", fail);
          resolve(text.slice(0, text.indexOf("\r\n")));
        }
      };
      const fail = (): void => reject(new Error(`the held connection to port ${port} closed: ${JSON.stringify(text)}`));
      socket.on("data", check);
      socket.once("close", fail);
      socket.write("GET /hello HTTP/1.1\r\nHost: stream\r\n\r\n");
    }),
    close: () => socket.destroy(),
  };
}
