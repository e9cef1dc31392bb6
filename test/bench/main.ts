/**
 * `npm run bench`: conductor's speed and memory, each figure beside a
 * reference measured in the same run on the same machine, as a ratio, with
 * the median of several rounds. Sets everything up on loopback by itself:
 * a private sshd, conductor-server, conductor with the test app, and a
 * private nginx as the reference. wrk is the load generator when installed.
 *
 * Options: --rounds N (default 3), --seconds S per run (default 5),
 * --routes N for the route-scale rows (default 10000), --write to record the
 * table in test/bench/RESULTS.md, --only A,B to run some sections
 * (throughput, tls, latency, websocket, control, scale, idle, streams).
 *
 * @module
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Cleanup } from "../helpers/cleanup.ts";
import { certDir, selfSigned } from "../helpers/certs.ts";
import { repoRoot } from "../helpers/env.ts";
import { fixture } from "../helpers/install.ts";
import { httpCommon, nginxMissing, startNginx } from "../helpers/nginx.ts";
import { startProcess } from "../helpers/process.ts";
import { sshdMissing, freePort } from "../helpers/sshd.ts";
import { startChain, type Chain } from "./chain.ts";
import { builtinLoad, sampleLatency, websocketEchoRate, type Target } from "./loader.ts";
import { controlPlaneRows } from "./control_plane.ts";
import { rateAndCpu, type LoadRun } from "./cpu.ts";
import { frameScanNs } from "./activity.ts";
import { alternate, compare, hotPathRows } from "./hot_path.ts";
import { adoptionRows, idleRows, raiseFileLimit, scaleRows } from "./scale.ts";
import { streamRows } from "./streams.ts";
import { hasWrk, postScript, runWrk } from "./wrk.ts";

/** One line of the results table. */
export interface Row {
  measure: string;
  conductor: string;
  reference: string;
  ratio: string;
  target: string;
}

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    routes: { type: "string", default: "10000" },
    write: { type: "boolean", default: false },
    only: { type: "string" },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const only = values.only ? new Set(values.only.split(",")) : null;
const wanted = (section: string): boolean => only === null || only.has(section);
if (only !== null && values.write) {
  process.stderr.write("bench: --write records the whole table in RESULTS.md; run it without --only\n");
  process.exit(2);
}

const cleanups: Array<() => unknown> = [];
const cleanup: Cleanup = { after: (fn) => { cleanups.push(fn); } };

/** Median of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Formats a number for the table. */
export function fmt(x: number, digits = 0): string {
  return x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Medians of two alternating measures, the median of their per-round ratios a/b, and that ratio's spread (min–max). */
export interface Paired {
  a: number;
  b: number;
  ratio: number;
  spread: string;
}

/** Runs `a` and `b` alternately `rounds` times; returns the medians, the median of the per-round ratios a/b and their spread. */
export async function paired(a: () => Promise<number>, b: () => Promise<number>): Promise<Paired> {
  const [only] = await pairedMany(async () => [await a()], async () => [await b()]);
  return only;
}

/** As {@link paired}, for runs that report several measures at once (a rate and its CPU): one {@link Paired} per measure. */
export async function pairedMany(a: () => Promise<number[]>, b: () => Promise<number[]>): Promise<Paired[]> {
  const runs = await alternate([a, b], rounds);
  return runs[0][0].map((_, k) => compare(runs, 0, 1, k));
}

/** Requests per second of GET `path` at `target` with 32 connections (wrk, or the built-in loader). */
async function rps(url: string, target: Target, path: string): Promise<number> {
  if (!hasWrk) return builtinLoad(target, path, 32, seconds);
  const r = await runWrk({ url: url + path, headers: { Host: target.host, Cookie: target.cookie ?? "" }, seconds });
  if (r.errors > 0) throw new Error(`wrk saw ${r.errors} errors on ${url}${path} (${r.errorText})`);
  return r.requestsPerSec;
}

/** What a sysadmin writes first: proxy_pass to the socket with upstream keep-alive, and nothing else. */
function nginxMinimal(socket: string, port: number): string {
  return `http {
  ${httpCommon()}
  upstream app { server unix:${socket}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}`;
}

/** The nginx reference: upstream keep-alive to the same forwarded socket, the same X-Forwarded fields, websockets as in contrib/. */
function nginxProxy(socket: string, port: number, tls?: { cert: string; key: string }): string {
  return `http {
  ${httpCommon()}
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream app { server unix:${socket}; keepalive 32; }
  server {
    listen 127.0.0.1:${port}${tls ? " ssl" : ""};
    ${tls ? `ssl_certificate ${tls.cert}; ssl_certificate_key ${tls.key};` : ""}
    client_max_body_size 0;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_request_buffering off;
    }
  }
}`;
}

async function throughputRows(rows: Row[]): Promise<Chain> {
  const chain = await startChain(cleanup);
  const nginxPort = await freePort();
  const nginx = await startNginx(cleanup, nginxProxy(chain.forwardedSocket, nginxPort));
  const target: Target = { port: chain.port, host: chain.host, cookie: chain.cookie };
  const gw = `http://127.0.0.1:${chain.port}`;
  const ng = `http://127.0.0.1:${nginxPort}`;
  await rps(gw, target, "/hello"); // warm-up
  if (wanted("throughput")) {
    if (hasWrk) {
      const headers = { Host: chain.host, Cookie: chain.cookie };
      /** A wrk run at `url` as a rate (`perRequest` scales requests/s, e.g. to MiB/s) and the proxy's µs of CPU per request. */
      const run = (pid: number, url: string, options: { connections?: number; script?: string; perRequest?: number } = {}) => async (): Promise<number[]> =>
        rateAndCpu(pid, async (): Promise<LoadRun> => {
          const r = await runWrk({ url, headers, seconds, connections: options.connections, script: options.script });
          if (r.errors > 0) throw new Error(`wrk saw ${r.errors} errors on ${url} (${r.errorText})`);
          return { rate: r.requestsPerSec * (options.perRequest ?? 1), requests: r.requests };
        });
      // Node's own floor: a bare relay of the same bytes through net.Socket, with no HTTP at all.
      const relayPort = await freePort();
      const relay = startProcess(cleanup, process.execPath, [fixture("relay"), String(relayPort), chain.forwardedSocket]);
      await relay.waitForLine((l) => l === "listening", 15_000);
      const minimalPort = await freePort();
      const minimal = await startNginx(cleanup, nginxMinimal(chain.forwardedSocket, minimalPort));
      rows.push(...await hotPathRows({
        gateway: { pid: chain.gateway.pid, url: gw },
        relay: { pid: relay.pid, url: `http://127.0.0.1:${relayPort}` },
        nginx: { pid: nginx.process.pid, url: ng },
        minimal: { pid: minimal.process.pid, url: `http://127.0.0.1:${minimalPort}` },
        host: chain.host, cookie: chain.cookie, seconds, rounds,
      }));
      const mib = 1024 * 1024;
      const download = { connections: 8, perRequest: 1 };
      const [big, bigCpu] = await pairedMany(run(chain.gateway.pid, `${gw}/bytes?n=${mib}`, download), run(nginx.process.pid, `${ng}/bytes?n=${mib}`, download));
      rows.push({ measure: "3a. MiB/s of 1 MiB responses, 8 connections", conductor: fmt(big.a, 1), reference: `${fmt(big.b, 1)} (nginx)`, ratio: `${big.ratio.toFixed(2)} (${big.spread})`, target: "≥ 0.95" });
      rows.push({ measure: "3c. µs of CPU per 1 MiB response, the proxy alone", conductor: fmt(bigCpu.a), reference: `${fmt(bigCpu.b)} (nginx)`, ratio: `${bigCpu.ratio.toFixed(2)} (${bigCpu.spread})`, target: "≤ 1.3" });
      const script = postScript(join(tmpdir(), `conductor-bench-post-${process.pid}.lua`), 10 * mib);
      cleanup.after(() => rmSync(script, { force: true }));
      const upload = { connections: 4, script, perRequest: 10 };
      const [up, upCpu] = await pairedMany(run(chain.gateway.pid, `${gw}/upload`, upload), run(nginx.process.pid, `${ng}/upload`, upload));
      rows.push({ measure: "3b. MiB/s of 10 MiB uploads, 4 connections", conductor: fmt(up.a, 1), reference: `${fmt(up.b, 1)} (nginx)`, ratio: `${up.ratio.toFixed(2)} (${up.spread})`, target: "≥ 0.95" });
      rows.push({ measure: "3d. µs of CPU per 10 MiB upload, the proxy alone", conductor: fmt(upCpu.a), reference: `${fmt(upCpu.b)} (nginx)`, ratio: `${upCpu.ratio.toFixed(2)} (${upCpu.spread})`, target: "≤ 1.3" });
    } else {
      const small = await paired(() => rps(gw, target, "/hello"), () => rps(ng, { ...target, port: nginxPort }, "/hello"));
      rows.push({ measure: "1. requests/s, small responses, 32 connections, through the SSH tunnel", conductor: fmt(small.a), reference: `${fmt(small.b)} (nginx, same headers)`, ratio: `${small.ratio.toFixed(2)} (${small.spread})`, target: "≥ 0.95" });
    }
  }
  if (wanted("latency")) {
    const direct: Target = { socketPath: chain.forwardedSocket, host: chain.host };
    // Alternated, 1000 requests each in all: a shared machine's load changes within the seconds one sample takes.
    const latency = (to: Target) => async (): Promise<number[]> => {
      const l = await sampleLatency(to, "/hello", Math.ceil(1000 / rounds));
      return [l.p50, l.p99];
    };
    const samples = await alternate([latency(target), latency(direct), latency({ ...target, port: nginxPort })], rounds);
    /** Row text for proxy `k` of the samples: its p50 / p99, and its p50 above the direct one's. */
    const over = (k: number): { conductor: string; ratio: string } => {
      const [p50, p99] = [compare(samples, k, 1, 0), compare(samples, k, 1, 1)];
      const excess = samples.map((r) => r[k][0] - r[1][0]);
      return { conductor: `${p50.a.toFixed(3)} / ${p99.a.toFixed(3)}`, ratio: `+${median(excess).toFixed(3)} ms p50 (${Math.min(...excess).toFixed(3)}–${Math.max(...excess).toFixed(3)})` };
    };
    const directLatency = `${median(samples.map((r) => r[1][0])).toFixed(3)} / ${median(samples.map((r) => r[1][1])).toFixed(3)} (direct to the forwarded socket)`;
    rows.push(
      { measure: "4. latency of one request on an idle keep-alive connection, p50 / p99 (ms), medians of the rounds", ...over(0), reference: directLatency, target: "small" },
      { measure: "4b. the same through nginx, same rounds", ...over(2), reference: directLatency, target: "" },
    );
  }
  if (wanted("websocket")) {
    const ws = await paired(() => websocketEchoRate(target, Math.min(seconds, 3)), () => websocketEchoRate({ socketPath: chain.forwardedSocket, host: chain.host }, Math.min(seconds, 3)));
    rows.push({ measure: "5a. websocket echo round trips/s, one connection", conductor: fmt(ws.a), reference: `${fmt(ws.b)} (direct to the forwarded socket)`, ratio: `${ws.ratio.toFixed(2)} (${ws.spread})`, target: "" });
    const vsNginx = await paired(() => websocketEchoRate(target, Math.min(seconds, 3)), () => websocketEchoRate({ ...target, port: nginxPort }, Math.min(seconds, 3)));
    rows.push({ measure: "5b. the same through nginx as the reference", conductor: fmt(vsNginx.a), reference: `${fmt(vsNginx.b)} (nginx)`, ratio: `${vsNginx.ratio.toFixed(2)} (${vsNginx.spread})`, target: "≥ 0.95" });
    const echoes = (pid: number, t: Target) => async (): Promise<number> => {
      const [, cpu] = await rateAndCpu(pid, async () => {
        const rate = await websocketEchoRate(t, Math.min(seconds, 3));
        return { rate, requests: rate * Math.min(seconds, 3) };
      });
      return cpu;
    };
    const wsCpu = await paired(echoes(chain.gateway.pid, target), echoes(nginx.process.pid, { ...target, port: nginxPort }));
    rows.push({ measure: "5c. µs of CPU per websocket round trip, the proxy alone (gateway; nginx master and workers)", conductor: fmt(wsCpu.a, 1),
      reference: `${fmt(wsCpu.b, 1)} (nginx)`, ratio: `${wsCpu.ratio.toFixed(2)} (${wsCpu.spread})`, target: "≤ 1.3" });
    const scan = frameScanNs();
    rows.push({ measure: "5d. activity tracking (--idle-timeout, --max-idle): ns to read the frame header of one 64-byte browser message, in process", conductor: fmt(scan, 1),
      reference: `${fmt(wsCpu.a * 1000)} ns (5c, the whole round trip)`, ratio: `${(scan / (wsCpu.a * 1000) * 100).toFixed(2)} %`, target: "≪ 1 %" });
  }
  return chain;
}

async function tlsRow(rows: Row[]): Promise<void> {
  if (!hasWrk) return;
  const dir = certDir(cleanup);
  const cert = selfSigned(dir, "bench", "localhost", ["localhost", "*.localhost"]);
  const chain = await startChain(cleanup, { gatewayArgs: ["--ssl-cert-file", cert.cert, "--ssl-key-file", cert.key] });
  const nginxPort = await freePort();
  await startNginx(cleanup, nginxProxy(chain.forwardedSocket, nginxPort, cert));
  const headers = { Host: chain.host, Cookie: chain.cookie };
  const run = async (port: number): Promise<number> => (await runWrk({ url: `https://127.0.0.1:${port}/hello`, headers, seconds })).requestsPerSec;
  await run(chain.port);
  const r = await paired(() => run(chain.port), () => run(nginxPort));
  rows.push({ measure: "2. requests/s, small responses, 32 connections, TLS on the front", conductor: fmt(r.a), reference: `${fmt(r.b)} (nginx, TLS)`, ratio: `${r.ratio.toFixed(2)} (${r.spread})`, target: "≥ 0.8" });
}

async function main(): Promise<void> {
  const missing = sshdMissing || nginxMissing;
  if (missing) {
    process.stderr.write(`bench: ${missing}\n`);
    process.exit(1);
  }
  raiseFileLimit(process.pid);
  const rows: Row[] = [];
  const log = (s: string): void => { process.stderr.write(s + "\n"); };
  log(`bench: ${cpus().length} cores, ${rounds} rounds of ${seconds} s, load from ${hasWrk ? "wrk" : "the built-in loader"}`);
  let chain: Chain | null = null;
  if (wanted("throughput") || wanted("latency") || wanted("websocket")) {
    log("bench: throughput, latency and websocket rows ...");
    chain = await throughputRows(rows);
  }
  if (wanted("tls")) {
    log("bench: TLS row ...");
    await tlsRow(rows);
  }
  if (wanted("control")) {
    log("bench: control plane rows ...");
    rows.push(...await controlPlaneRows(cleanup, chain, rounds));
    rows.push(...await adoptionRows(cleanup, 1000, rounds));
  }
  if (wanted("scale")) {
    log("bench: route scale rows ...");
    rows.push(...await scaleRows(cleanup, { routes: Number(values.routes), seconds, rounds }));
  }
  if (wanted("idle")) {
    log("bench: idle connection rows ...");
    rows.push(...await idleRows(cleanup));
  }
  if (wanted("streams")) {
    log("bench: stream rows ...");
    rows.push(...await streamRows(cleanup, seconds));
  }
  rows.sort((a, b) => a.measure.localeCompare(b.measure, "en", { numeric: true }));
  const table = renderTable(rows);
  process.stdout.write(table);
  if (values.write) writeResults(table);
}

function renderTable(rows: Row[]): string {
  let out = "| measure | conductor | reference (same run) | ratio | target |\n|---|---|---|---|---|\n";
  for (const r of rows) out += `| ${r.measure} | ${r.conductor} | ${r.reference} | ${r.ratio} | ${r.target} |\n`;
  return out;
}

/** Heading of the hand-written notes that follow the table in RESULTS.md, kept when the table is rewritten. */
const NOTES = "\n## Notes\n";

function writeResults(table: string): void {
  const path = join(repoRoot, "test", "bench", "RESULTS.md");
  const old = existsSync(path) ? readFileSync(path, "utf8") : "";
  const notes = old.includes(NOTES) ? old.slice(old.indexOf(NOTES)) : "";
  const date = new Date().toISOString().slice(0, 10);
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const text = `# Benchmark results\n\nLatest figures of \`npm run bench\` (${rounds} rounds of ${seconds} s, medians), on ${date}, ` +
    `on a ${cpus().length}-core machine (${cpu}) with Node ${process.version}.\n\n` +
    "These figures come from a shared, noisy machine where the load generator, the gateway, ssh, sshd, nginx and the app " +
    "all share the same cores: compare the ratios, measured in the same run, not the absolute numbers.\n\n" + table + notes;
  writeFileSync(path, text);
  process.stderr.write(`bench: wrote ${path}\n`);
}

main().then(async () => {
  for (const fn of cleanups.reverse()) await fn();
  process.exit(0);
}, async (err) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
  for (const fn of cleanups.reverse()) await fn();
  process.exit(1);
});

