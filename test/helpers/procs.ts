/**
 * What runs on this machine, from /proc: used to show that nothing is left
 * behind (zombies, which only wait for their parent to reap them, are skipped).
 *
 * @module
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** A live process. */
export interface ProcInfo {
  pid: number;
  uid: number;
  cmdline: string;
}

/** Live (non-zombie) processes whose command line contains `needle`. */
export function processesMatching(needle: string): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      if (/^State:\s+Z/m.test(status)) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ").trim();
      if (!cmdline.includes(needle)) continue;
      out.push({ pid: Number(entry), uid: Number(/^Uid:\s+(\d+)/m.exec(status)![1]), cmdline });
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/** Waits until no live process matches `needle`; returns those still there after `timeoutMs`. */
export async function waitGone(needle: string, timeoutMs = 30_000): Promise<ProcInfo[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = processesMatching(needle);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `pid` and every live process below it, parents first. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      // The parent pid is the second field after the command name, which is in parentheses and may hold spaces.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch { /* gone meanwhile */ }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]) ?? []));
  return tree;
}

/** Kills `pid` and every process below it with SIGKILL at once, as a crash of the whole service would. */
export function killTree(pid: number): number[] {
  const tree = processTree(pid);
  for (const p of tree) {
    try {
      process.kill(p, "SIGKILL");
    } catch { /* gone meanwhile */ }
  }
  return tree;
}

/** True while process `pid` exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** The files under `dir` that process `pid` has open (read from /proc/PID/fd; needs the same user or root). */
export function openFilesUnder(pid: number, dir: string): string[] {
  const prefix = dir.endsWith("/") ? dir : dir + "/";
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith(prefix)) out.push(target);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

/** Live nginx processes (master and workers) whose working directory is `dir`: a gateway's streams' nginx runs in its prefix. */
export function nginxIn(dir: string): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== "nginx" || readlinkSync(`/proc/${entry}/cwd`) !== dir) continue;
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      if (/^State:\s+Z/m.test(status)) continue;
      out.push({ pid: Number(entry), uid: Number(/^Uid:\s+(\d+)/m.exec(status)![1]), cmdline: readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ").trim() });
    } catch { /* gone meanwhile */ }
  }
  return out;
}
