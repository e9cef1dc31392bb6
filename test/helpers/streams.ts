/**
 * TCP streams in tests: a range of free gateway ports for one gateway
 * (test files run at once, so each takes its own), and a connection that
 * sends bytes and collects the answer.
 *
 * @module
 */
import { connect } from "node:net";
import { bindProblem } from "../../src/streams/ports.ts";

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
