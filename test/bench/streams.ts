/**
 * Stream rows of the benchmark: a TCP app published with `conductor --tcp`,
 * reached through the gateway's port (nginx's stream relay, then the SSH
 * tunnel) and, as the reference, through the same tunnelled socket directly;
 * and what a registration of a stream costs now that it swaps a link (against
 * the reload it replaced, which admins' host:port streams still take), with
 * nginx's processes and memory after many of them.
 *
 * @module
 */
import { request } from "node:http";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashToken } from "../../src/lib/token.ts";
import { defer } from "../helpers/cleanup.ts";
import { nginxIn } from "../helpers/procs.ts";
import type { Cleanup } from "../helpers/cleanup.ts";
import { fixture } from "../helpers/install.ts";
import { freePortRange } from "../helpers/streams.ts";
import { startChain } from "./chain.ts";
import { fmt, median, paired, type Row } from "./main.ts";

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

/** The stream rows: throughput and connection rate through gateway + nginx + tunnel, against the tunnel alone; registration cost and nginx's footprint. */
export async function streamRows(cleanup: Cleanup, seconds: number): Promise<Row[]> {
  const range = await freePortRange(4);
  const work = mkdtempSync(join(tmpdir(), "conductor-bench-streams-"));
  defer(cleanup, () => rmSync(work, { recursive: true, force: true }));
  const adminSocket = join(work, "admin.sock");
  const chain = await startChain(cleanup, {
    gatewayArgs: ["--port-range", range.text, "--stream-host", "127.0.0.1", "--admin-socket", adminSocket, "--max-registrations-per-minute", "0"],
    clientArgs: ["--tcp"],
    command: [process.execPath, fixture("tcp_app")],
  });
  const through: Endpoint = { port: chain.live.port as number };
  const direct: Endpoint = { path: chain.forwardedSocket };
  await hello(through);
  const mib = await paired(() => mibPerSecond(through, seconds), () => mibPerSecond(direct, seconds));
  const rate = await paired(() => connectionsPerSecond(through, seconds), () => connectionsPerSecond(direct, seconds));

  const control = join(chain.runtimeDir, "client");
  const linkMs: number[] = [];
  for (let i = 0; i < 20; i++) linkMs.push((await registerStream(control, `bench-${i % 2}`)).ms);
  // 200 registrations and removals, each with a connection left open through it: nginx must not pile up workers.
  const prefix = join(chain.runtimeDir, "nginx");
  const before = footprint(prefix);
  const held: Socket[] = [];
  defer(cleanup, () => { for (const c of held) c.destroy(); });
  for (let i = 0; i < 200; i++) {
    await registerStream(control, "cycle", (port) => {
      const c = connect(port, "127.0.0.1");
      c.on("error", () => {});
      held.push(c);
      return new Promise((resolve) => c.once("data", () => resolve()));
    });
  }
  const after = footprint(prefix);
  // The reload it replaced, last: its old workers would count above.
  const reloadMs: number[] = [];
  const admin = adminPort(range.last, chain.live.port as number);
  for (let i = 0; i < 5; i++) {
    const started = process.hrtime.bigint();
    await adminGet(adminSocket, `/createstream/${admin}/127.0.0.1:9?name=bench`);
    reloadMs.push(Number(process.hrtime.bigint() - started) / 1e6);
    await adminGet(adminSocket, `/removestream/${admin}`);
  }

  return [
    { measure: "9a. MiB/s of a TCP stream (conductor --tcp), 64 MiB downloads on 4 connections, gateway port through nginx and the tunnel",
      conductor: fmt(mib.a, 1), reference: `${fmt(mib.b, 1)} (the same tunnelled socket, directly)`, ratio: `${mib.ratio.toFixed(2)} (${mib.spread})`, target: "≥ 0.9" },
    { measure: "9b. new TCP stream connections/s (each an SSH channel), 8 at a time",
      conductor: fmt(rate.a), reference: `${fmt(rate.b)} (the same tunnelled socket, directly)`, ratio: `${rate.ratio.toFixed(2)} (${rate.spread})`, target: "" },
    { measure: "9c. ms to publish a stream (register to reply, link swapped, no reload), median of 20",
      conductor: fmt(median(linkMs), 1), reference: `${fmt(median(reloadMs), 1)} (an admin's host:port stream: nginx -t and a reload, as every registration took before)`,
      ratio: (median(linkMs) / median(reloadMs)).toFixed(2), target: "≪ 1" },
    { measure: "9d. nginx processes and MiB resident after 200 stream registrations and removals, a connection held open through each",
      conductor: `${after.processes} processes, ${fmt(after.mib, 1)} MiB`, reference: `${before.processes} processes, ${fmt(before.mib, 1)} MiB (before)`,
      ratio: `${after.processes - before.processes >= 0 ? "+" : ""}${after.processes - before.processes} processes`, target: "+0" },
  ];
}

/** The number of nginx processes of a prefix, and their resident memory in MiB. */
function footprint(prefix: string): { processes: number; mib: number } {
  const procs = nginxIn(prefix);
  let kib = 0;
  for (const p of procs) {
    const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${p.pid}/status`, "utf8"));
    kib += m === null ? 0 : Number(m[1]);
  }
  return { processes: procs.length, mib: kib / 1024 };
}

/** A port of the range other than the chain's stream's, for the admin's stream. */
function adminPort(last: number, taken: number): number {
  return last === taken ? last - 1 : last;
}

/**
 * Registers a stream `name` through the control socket, as a client would
 * once its sshd placed the socket (here a tiny app that says `hi` and keeps
 * the connection open), runs
 * `whileLive` with its port, then says goodbye and waits for the gateway to
 * close. Returns the time from config to reply.
 */
function registerStream(control: string, name: string, whileLive?: (port: number) => Promise<void>): Promise<{ ms: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect(control);
    let buffered = "";
    let started = 0n;
    let ms = 0;
    let server: Server | null = null;
    socket.setEncoding("utf8");
    socket.on("error", reject);
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf("\n");
      if (nl === -1) return;
      const line = JSON.parse(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      if (server === null) {
        server = createServer((c) => { c.on("error", () => {}); c.write("hi\n"); });
        server.listen(join(line.directory, "socket"), () => {
          chmodSync(join(line.directory, "socket"), 0o660);
          started = process.hrtime.bigint();
          socket.write(JSON.stringify({ auth: hashToken(`bench-${name}`), key: name, kind: "tcp" }) + "\n");
        });
        return;
      }
      ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (line.status !== "ok") return reject(new Error(`registration refused: ${line.reason}`));
      void (whileLive?.(line.port) ?? Promise.resolve()).then(() => socket.end('{"op": "close"}\n'));
    });
    socket.on("close", () => {
      server?.close();
      resolve({ ms });
    });
  });
}

/** GET `path` on the admin API's socket; rejects unless it answers 200. */
function adminGet(socketPath: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    request({ socketPath, path }, (res) => {
      let body = "";
      res.on("data", (c) => { body += c; });
      res.on("end", () => res.statusCode === 200 ? resolve() : reject(new Error(`admin ${path}: ${res.statusCode} ${body}`)));
    }).on("error", reject).end();
  });
}
