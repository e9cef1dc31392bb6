/**
 * CPU time of processes from /proc, for the benchmark's CPU-per-request rows:
 * the steady figure on a shared machine, where requests per second move with
 * whatever else runs.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { processTree } from "../helpers/procs.ts";

/** Clock ticks per second of /proc/PID/stat's times (USER_HZ, 100 on Linux). */
const TICKS = 100;

/** User plus system CPU seconds spent so far by `pid` and the processes below it (nginx's workers). */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch { /* gone meanwhile */ }
  }
  return ticks / TICKS;
}

/** What a load run reports: its rate (requests/s, MiB/s) and how many requests it made. */
export interface LoadRun {
  rate: number;
  requests: number;
}

/** Runs `load` and returns its rate and the µs of CPU `pid` (and its children) spent per request during it. */
export async function rateAndCpu(pid: number, load: () => Promise<LoadRun>): Promise<[rate: number, cpu: number]> {
  const before = cpuSeconds(pid);
  const run = await load();
  return [run.rate, ((cpuSeconds(pid) - before) / run.requests) * 1e6];
}
