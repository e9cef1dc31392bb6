/**
 * Scale rows of the benchmark: many routes (registration rate, Host lookup
 * cost, memory per route), then many idle browser connections and open
 * websockets (memory of conductor-server). Routes are registered through the
 * control socket without SSH by the registrar harness.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import type { Cleanup } from "../helpers/cleanup.ts";
import { currentAccount } from "../helpers/accounts.ts";
import { execFileSync } from "node:child_process";
import { makeRuntimeDir } from "../helpers/gateway.ts";
import { bin, publicDist } from "../helpers/install.ts";
import { startProcess, type TestProcess } from "../helpers/process.ts";
import { openWebSocket, type WsClient } from "../helpers/websocket.ts";
import { builtinLoad } from "./loader.ts";
import { fmt, median, type Row } from "./main.ts";
import { hasWrk, runWrk } from "./wrk.ts";

/** Settings of {@link scaleRows}. */
export interface ScaleOptions {
  routes: number;
  seconds: number;
  rounds: number;
}

/** Resident memory of a process, in KiB. */
function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+([0-9]+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

/** The soft and hard limits of open files of a process, from /proc. */
function fileLimits(pid: number | "self"): { soft: number; hard: number } {
  const m = /^Max open files\s+([0-9]+|unlimited)\s+([0-9]+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, "utf8"));
  const n = (s: string | undefined): number => (s === undefined ? 1024 : s === "unlimited" ? 1 << 20 : Number(s));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

/** Raises the soft limit of open files of `pid` to its hard limit (no privilege needed); returns the limit. */
export function raiseFileLimit(pid: number): number {
  const { soft, hard } = fileLimits(pid);
  if (soft < hard) {
    try {
      execFileSync("prlimit", ["--pid", String(pid), `--nofile=${hard}:${hard}`], { stdio: "ignore" });
      return hard;
    } catch { /* keep the soft limit */ }
  }
  return soft;
}

/** Most routes one registrar process handles: it holds two descriptors per route. */
const ROUTES_PER_REGISTRAR = 4000;

/** Registers `count` routes from index `first`, in registrar processes of at most {@link ROUTES_PER_REGISTRAR} each. */
async function register(cleanup: Cleanup, control: string, count: number, first: number): Promise<number> {
  const started = process.hrtime.bigint();
  for (let done = 0; done < count; done += ROUTES_PER_REGISTRAR) {
    const n = Math.min(ROUTES_PER_REGISTRAR, count - done);
    const proc = startProcess(cleanup, process.execPath, [join(publicDist(), "test", "bench", "registrar.js"), control, String(n), String(first + done)], { stdin: true });
    raiseFileLimit(proc.pid);
    await proc.waitForJson((l) => l.done === true, 600_000);
  }
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** Starts conductor-server on `runtime` and waits until it listens; returns it, its port, its open-files limit and how long it took (ms). */
async function startBenchGateway(cleanup: Cleanup, runtime: string, maxRoutes: number): Promise<{ gateway: TestProcess; port: number; limit: number; ms: number }> {
  const started = process.hrtime.bigint();
  const gateway = startProcess(cleanup, process.execPath, [bin("conductor-server"), "-r", runtime, "--state-dir", join(runtime, "state"), "-p", "0", "-b", "127.0.0.1",
    "--max-routes-per-user", String(maxRoutes + 10), "--no-streams", "--max-registrations-per-minute", "0",
    // These rows measure what many connections cost, from one address and to one app: no caps.
    "--max-connections", "0", "--max-connections-per-address", "0", "--max-app-connections", "0"]);
  const limit = raiseFileLimit(gateway.pid);
  const ready = await gateway.waitForJson((l) => l.msg === "gateway listening", 120_000, "stderr");
  return { gateway, port: ready.port as number, limit, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

/** Starts a gateway with one route (the test app) for the scale rows. */
async function gatewayWithRoute(cleanup: Cleanup, maxRoutes: number): Promise<{ gateway: TestProcess; port: number; control: string; host: string; limit: number; runtime: string }> {
  const runtime = makeRuntimeDir(cleanup);
  const { gateway, port, limit } = await startBenchGateway(cleanup, runtime, maxRoutes);
  const control = join(runtime, "client");
  await register(cleanup, control, 1, 0);
  return { gateway, port, control, host: `r0-${currentAccount().name}.localhost:${port}`, limit, runtime };
}

/**
 * Row 8b: a restart of conductor-server that takes over `count` live routes
 * (probing each socket and publishing it) vs one with none to take over.
 */
export async function adoptionRows(cleanup: Cleanup, count: number, rounds: number): Promise<Row[]> {
  const { gateway, control, runtime } = await gatewayWithRoute(cleanup, count);
  await register(cleanup, control, count - 1, 1);
  await gateway.stop();
  const empty = makeRuntimeDir(cleanup);
  const full: number[] = [];
  const none: number[] = [];
  for (let i = 0; i < Math.max(rounds, 3); i++) {
    const again = await startBenchGateway(cleanup, runtime, count);
    const kept = again.gateway.json("stderr").find((l) => l.msg === "routes kept across the restart");
    if (kept?.count !== count) throw new Error(`the restarted gateway kept ${String(kept?.count ?? 0)} routes of ${count}`);
    full.push(again.ms);
    await again.gateway.stop();
    const fresh = await startBenchGateway(cleanup, empty, count);
    none.push(fresh.ms);
    await fresh.gateway.stop();
  }
  return [{
    measure: `8b. conductor-server start to listening (ms), taking over ${fmt(count)} live routes vs none`,
    conductor: fmt(median(full), 0),
    reference: `${fmt(median(none), 0)} (nothing to take over)`,
    ratio: (median(full) / median(none)).toFixed(2),
    target: "",
  }];
}

/** Resident memory of `pid` once it has settled (the smallest of a few readings over two seconds), in KiB. */
async function settledRss(pid: number): Promise<number> {
  let least = Infinity;
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 400));
    least = Math.min(least, rssKiB(pid));
  }
  return least;
}

/** Rows 6: many routes (registration rate, lookup cost, memory per route). */
export async function scaleRows(cleanup: Cleanup, options: ScaleOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const { gateway, port, control, host, limit } = await gatewayWithRoute(cleanup, options.routes);
  // The gateway holds a control connection per route, and a few more descriptors.
  const routes = Math.min(options.routes, limit - 1000);

  // Requests refused at the cookie: routing, parsing and the check, no app.
  const refusedRate = async (): Promise<number> => {
    if (!hasWrk) return builtinLoad({ port, host, cookie: "authorization=wrong" }, "/", 32, options.seconds);
    return (await runWrk({ url: `http://127.0.0.1:${port}/`, headers: { Host: host, Cookie: "authorization=wrong" }, seconds: options.seconds })).requestsPerSec;
  };
  {
    await refusedRate();
    const one: number[] = [];
    for (let i = 0; i < options.rounds; i++) one.push(await refusedRate());
    const before = await settledRss(gateway.pid);
    const perSecond = await register(cleanup, control, routes - 1, 1);
    const after = await settledRss(gateway.pid);
    const lots: number[] = [];
    for (let i = 0; i < options.rounds; i++) lots.push(await refusedRate());
    const perRoute = (after - before) / (routes - 1);
    const table = JSON.parse(execFileSync(process.execPath, ["--expose-gc", join(publicDist(), "test", "bench", "route_table.js"), String(options.routes)], { encoding: "utf8" })) as
      { lookupNsOne: number; lookupNsMany: number; bytesPerRoute: number };
    rows.push({ measure: `6a. registrations/s through the control socket (${fmt(routes)} routes, 32 at a time)`, conductor: fmt(perSecond), reference: "", ratio: "", target: "" });
    rows.push({ measure: `6b. Host lookup in the route table (ns), ${fmt(options.routes)} routes vs 1`, conductor: fmt(table.lookupNsMany, 1), reference: `${fmt(table.lookupNsOne, 1)} (1 route)`, ratio: (table.lookupNsMany / table.lookupNsOne).toFixed(2), target: "flat (≪ 1 µs)" });
    rows.push({ measure: `6c. heap per route in the route table (KiB), ${fmt(options.routes)} routes`, conductor: fmt(table.bytesPerRoute / 1024, 2), reference: "", ratio: "", target: "< 2 KiB" });
    rows.push({ measure: `6d. requests/s routed and refused at the cookie, ${fmt(routes)} live registrations vs 1`, conductor: fmt(median(lots)), reference: `${fmt(median(one))} (1 route)`, ratio: (median(lots) / median(one)).toFixed(2), target: "≈ 1" });
    rows.push({ measure: "6e. resident memory per live registration (KiB): route, control connection, directory", conductor: fmt(perRoute, 2), reference: `${fmt(before / 1024, 1)} MiB before, ${fmt(after / 1024, 1)} MiB after`, ratio: "", target: "" });
  }
  return rows;
}

/** Rows 7: many idle browser connections, then many open websockets, on a fresh gateway. */
export async function idleRows(cleanup: Cleanup): Promise<Row[]> {
  const rows: Row[] = [];
  const { gateway, port, host } = await gatewayWithRoute(cleanup, 10);
  {
    const base = await settledRss(gateway.pid);
    const sockets: Socket[] = [];
    cleanup.after(() => { for (const s of sockets) s.destroy(); });
    const request = `GET /hello HTTP/1.1\r\nHost: ${host}\r\nCookie: authorization=benchmark-token-0\r\n\r\n`;
    for (let batch = 0; batch < 50; batch++) {
      await Promise.all(Array.from({ length: 100 }, () => new Promise<void>((resolve, reject) => {
        const s = connect(port, "127.0.0.1", () => s.write(request));
        s.once("data", () => resolve());
        s.once("error", reject);
        sockets.push(s);
      })));
    }
    const withIdle = await settledRss(gateway.pid);
    const websockets: WsClient[] = [];
    cleanup.after(() => { for (const w of websockets) w.close(); });
    for (let batch = 0; batch < 10; batch++) {
      websockets.push(...await Promise.all(Array.from({ length: 100 }, () =>
        openWebSocket({ port, host, path: "/ws", headers: { Cookie: "authorization=benchmark-token-0" } }))));
    }
    const withWs = await settledRss(gateway.pid);
    rows.push({ measure: "7a. resident memory per idle keep-alive browser connection (KiB), 5,000 open", conductor: fmt((withIdle - base) / 5000, 2), reference: `${fmt(base / 1024, 1)} MiB before, ${fmt(withIdle / 1024, 1)} MiB with them`, ratio: "", target: "" });
    rows.push({ measure: "7b. resident memory per open websocket (KiB), 1,000 open on top", conductor: fmt((withWs - withIdle) / 1000, 2), reference: `${fmt(withWs / 1024, 1)} MiB in all`, ratio: "", target: "" });
  }
  return rows;
}
