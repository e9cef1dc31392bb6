/**
 * What a proxy does for each lone request, counted by strace: reads, writes
 * and event-loop waits per request. A deferral added on the hot path (a
 * write that waits for another turn of the loop, a timer, a second read)
 * shows here as a count above the bare relay's and nginx's, however noisy
 * the machine's clock is.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processTree } from "../helpers/procs.ts";
import { startProcess } from "../helpers/process.ts";

/** True when strace can be run here. */
export const hasStrace = spawnSync("strace", ["-V"]).error === undefined;

/** Syscalls per request of one run, by kind. */
export interface SyscallCounts {
  reads: number;
  writes: number;
  waits: number;
}

const READS = new Set(["read", "readv", "recvfrom", "recvmsg"]);
const WRITES = new Set(["write", "writev", "sendto", "sendmsg"]);
const WAITS = new Set(["epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll"]);

/**
 * Runs `load` (which returns how many requests it made) while strace counts
 * the syscalls of `pid` and the processes below it (nginx's workers);
 * returns them per request.
 */
export async function syscallsPerRequest(pid: number, load: () => Promise<number>): Promise<SyscallCounts> {
  const dir = mkdtempSync(join(tmpdir(), "conductor-bench-strace-"));
  try {
    const out = join(dir, "counts");
    const pids = processTree(pid);
    const strace = startProcess(null, "strace", ["-c", "-f", "-o", out, ...pids.flatMap((p) => ["-p", String(p)])]);
    let attached = 0;
    await strace.waitForLine((line) => line.includes("attached") && ++attached >= pids.length, 30_000, "stderr");
    const requests = await load();
    // strace prints its table when it detaches, on SIGTERM.
    await strace.stop();
    const counts = { reads: 0, writes: 0, waits: 0 };
    for (const line of readFileSync(out, "utf8").split("\n")) {
      // "% time  seconds  usecs/call  calls  [errors]  syscall"
      const fields = line.trim().split(/\s+/);
      const name = fields[fields.length - 1], calls = Number(fields[3]);
      if (fields.length < 5 || !Number.isFinite(calls)) continue;
      if (READS.has(name)) counts.reads += calls;
      else if (WRITES.has(name)) counts.writes += calls;
      else if (WAITS.has(name)) counts.waits += calls;
    }
    return { reads: counts.reads / requests, writes: counts.writes / requests, waits: counts.waits / requests };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** "reads / writes / waits", one decimal each. */
export function formatCounts(c: SyscallCounts): string {
  return `${c.reads.toFixed(1)} / ${c.writes.toFixed(1)} / ${c.waits.toFixed(1)}`;
}
