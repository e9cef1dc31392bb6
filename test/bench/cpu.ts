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

/** Runs `load`, which reports how many requests it made, and returns the µs of CPU `pid` (and its children) spent per request. */
export async function cpuPerRequest(pid: number, load: () => Promise<number>): Promise<number> {
  const before = cpuSeconds(pid);
  const requests = await load();
  return ((cpuSeconds(pid) - before) / requests) * 1e6;
}
