/**
 * The benchmark's own load tools: a keep-alive HTTP loader (used when wrk is
 * missing), a latency sampler over one idle keep-alive connection, and a
 * websocket echo rate.
 *
 * @module
 */
import { Agent, request } from "node:http";
import { connect, type Socket } from "node:net";
import { openWebSocket } from "../helpers/websocket.ts";

/** Where requests go: a TCP port on 127.0.0.1 or a UNIX socket, with the Host and Cookie to send. */
export interface Target {
  port?: number;
  socketPath?: string;
  host: string;
  cookie?: string;
}

/**
 * Sends GET `path` on `connections` keep-alive connections, each one request
 * after the other, for `seconds`; returns requests per second.
 */
export async function builtinLoad(target: Target, path: string, connections: number, seconds: number): Promise<number> {
  const head = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${target.host}\r\n${target.cookie ? `Cookie: ${target.cookie}\r\n` : ""}\r\n`, "latin1");
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  const one = (): Promise<void> => new Promise((resolve) => {
    const socket: Socket = target.socketPath ? connect(target.socketPath) : connect(target.port!, "127.0.0.1");
    let buf = "";
    let need = -1;
    const send = (): void => {
      if (Date.now() >= deadline) { socket.destroy(); resolve(); return; }
      socket.write(head);
    };
    socket.setEncoding("latin1");
    socket.on("connect", send);
    socket.on("data", (chunk: string) => {
      buf += chunk;
      for (;;) {
        if (need === -1) {
          const end = buf.indexOf("\r\n\r\n");
          if (end === -1) return;
          const m = /content-length: *([0-9]+)/i.exec(buf.slice(0, end));
          need = end + 4 + (m ? Number(m[1]) : 0);
        }
        if (buf.length < need) return;
        buf = buf.slice(need);
        need = -1;
        done++;
        send();
        if (socket.destroyed) return;
      }
    });
    socket.on("error", () => resolve());
    socket.on("close", () => resolve());
  });
  await Promise.all(Array.from({ length: connections }, one));
  return done / seconds;
}

/** Latencies of `count` sequential requests on one keep-alive connection, in ms: p50 and p99. */
export async function sampleLatency(target: Target, path: string, count: number): Promise<{ p50: number; p99: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  try {
    for (let i = 0; i < count + 20; i++) {
      const start = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port: target.port, socketPath: target.socketPath, path, agent,
          headers: { Host: target.host, ...(target.cookie ? { Cookie: target.cookie } : {}) } }, (res) => {
          res.resume();
          res.on("end", resolve);
        });
        req.on("error", reject);
        req.end();
      });
      // The first requests warm the connection and the JIT.
      if (i >= 20) times.push(Number(process.hrtime.bigint() - start) / 1e6);
      // An idle connection between requests, as a person clicking.
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    agent.destroy();
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length * 0.5)], p99: times[Math.floor(times.length * 0.99)] };
}

/** Websocket echo round trips per second over one connection, for `seconds`. */
export async function websocketEchoRate(target: Target, seconds: number): Promise<number> {
  const ws = await openWebSocket({ port: target.port ?? 0, socketPath: target.socketPath, host: target.host, path: "/ws",
    headers: target.cookie ? { Cookie: target.cookie } : {} });
  const message = Buffer.alloc(64, 97);
  const deadline = Date.now() + seconds * 1000;
  let n = 0;
  while (Date.now() < deadline) {
    ws.send(message);
    await ws.receive();
    n++;
  }
  ws.close();
  return n / seconds;
}
