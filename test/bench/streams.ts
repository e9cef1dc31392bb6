/**
 * Stream rows of the benchmark: a TCP app published with `conductor --tcp`,
 * reached through the gateway's port (nginx's stream relay, then the SSH
 * tunnel) and, as the reference, through the same tunnelled socket directly.
 *
 * @module
 */
import { connect, type Socket } from "node:net";
import type { Cleanup } from "../helpers/cleanup.ts";
import { fixture } from "../helpers/install.ts";
import { freePortRange } from "../helpers/streams.ts";
import { startChain } from "./chain.ts";
import { fmt, paired, type Row } from "./main.ts";

/** Where a connection goes: the gateway's port, or the forwarded socket. */
type Endpoint = { port: number } | { path: string };

function open(to: Endpoint): Socket {
  return "port" in to ? connect(to.port, "127.0.0.1") : connect(to.path);
}

/** Asks for `bytes` on one connection and resolves when they all came. */
function download(to: Endpoint, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = open(to);
    let got = 0;
    socket.on("connect", () => socket.write(`send ${bytes}\n`));
    socket.on("data", (chunk: Buffer) => { got += chunk.length; });
    socket.on("error", reject);
    socket.on("close", () => got === bytes ? resolve(got) : reject(new Error(`got ${got} of ${bytes} bytes`)));
  });
}

/** MiB/s of 64 MiB downloads on 4 connections at once, repeated for `seconds`. */
async function mibPerSecond(to: Endpoint, seconds: number): Promise<number> {
  const size = 64 << 20;
  const start = process.hrtime.bigint();
  const deadline = Date.now() + seconds * 1000;
  let total = 0;
  while (Date.now() < deadline) {
    total += (await Promise.all([0, 1, 2, 3].map(() => download(to, size)))).reduce((a, b) => a + b, 0);
  }
  return total / (1 << 20) / (Number(process.hrtime.bigint() - start) / 1e9);
}

/** One short exchange: connect, say hello, read the answer until the app closes. */
function hello(to: Endpoint): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = open(to);
    let answer = "";
    socket.setEncoding("latin1");
    socket.on("connect", () => socket.write("hello\n"));
    socket.on("data", (chunk: string) => { answer += chunk; });
    socket.on("error", reject);
    socket.on("close", () => answer === "hi\n" ? resolve() : reject(new Error(`answer ${JSON.stringify(answer)}`)));
  });
}

/** New connections per second (each a new SSH channel), 8 at a time, for `seconds`. */
async function connectionsPerSecond(to: Endpoint, seconds: number): Promise<number> {
  const deadline = Date.now() + seconds * 1000;
  const start = Date.now();
  let done = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (Date.now() < deadline) {
      await hello(to);
      done++;
    }
  }));
  return done / ((Date.now() - start) / 1000);
}

/** The stream rows: throughput and connection rate through gateway + nginx + tunnel, against the tunnel alone. */
export async function streamRows(cleanup: Cleanup, seconds: number): Promise<Row[]> {
  const range = await freePortRange(2);
  const chain = await startChain(cleanup, {
    gatewayArgs: ["--port-range", range.text, "--stream-host", "127.0.0.1"],
    clientArgs: ["--tcp"],
    command: [process.execPath, fixture("tcp_app")],
  });
  const through: Endpoint = { port: chain.live.port as number };
  const direct: Endpoint = { path: chain.forwardedSocket };
  await hello(through);
  const mib = await paired(() => mibPerSecond(through, seconds), () => mibPerSecond(direct, seconds));
  const rate = await paired(() => connectionsPerSecond(through, seconds), () => connectionsPerSecond(direct, seconds));
  return [
    { measure: "9a. MiB/s of a TCP stream (conductor --tcp), 64 MiB downloads on 4 connections, gateway port through nginx and the tunnel",
      conductor: fmt(mib.a, 1), reference: `${fmt(mib.b, 1)} (the same tunnelled socket, directly)`, ratio: `${mib.ratio.toFixed(2)} (${mib.spread})`, target: "≥ 0.9" },
    { measure: "9b. new TCP stream connections/s (each an SSH channel), 8 at a time",
      conductor: fmt(rate.a), reference: `${fmt(rate.b)} (the same tunnelled socket, directly)`, ratio: `${rate.ratio.toFixed(2)} (${rate.spread})`, target: "" },
  ];
}
