/**
 * Load from wrk (Debian's package), the benchmark's load generator: runs it
 * and reads its summary.
 *
 * @module
 */
import { execFile, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";

/** True when wrk is installed. */
export const hasWrk = spawnSync("wrk", ["--version"]).error === undefined;

/** What wrk measured. */
export interface WrkResult {
  requestsPerSec: number;
  /** Transfer rate in bytes per second (wrk's Transfer/sec). */
  bytesPerSec: number;
  errors: number;
  /** wrk's own lines about them ("Socket errors: …", "Non-2xx …"), for a message. */
  errorText: string;
  requests: number;
}

/** One wrk run. */
export interface WrkRun {
  url: string;
  headers?: Record<string, string>;
  connections?: number;
  threads?: number;
  seconds?: number;
  /** A Lua script file (e.g. to POST a body). */
  script?: string;
}

/** Runs wrk once. */
export function runWrk(run: WrkRun): Promise<WrkResult> {
  const args = ["-t", String(run.threads ?? 2), "-c", String(run.connections ?? 32), "-d", `${run.seconds ?? 5}s`];
  for (const [k, v] of Object.entries(run.headers ?? {})) args.push("-H", `${k}: ${v}`);
  if (run.script) args.push("-s", run.script);
  args.push(run.url);
  return new Promise((resolve, reject) => {
    execFile("wrk", args, { encoding: "utf8", timeout: ((run.seconds ?? 5) + 30) * 1000 }, (err, stdout) => {
      if (err) return reject(new Error(`wrk failed: ${err.message}\n${stdout}`));
      const rps = /Requests\/sec:\s+([0-9.]+)/.exec(stdout);
      const transfer = /Transfer\/sec:\s+([0-9.]+)([KMG]?B)/.exec(stdout);
      const total = /([0-9]+) requests in/.exec(stdout);
      const non2xx = /Non-2xx or 3xx responses:\s+([0-9]+)/.exec(stdout);
      const sockErr = /Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)/.exec(stdout);
      if (!rps || !transfer || !total) return reject(new Error(`cannot read wrk's output:\n${stdout}`));
      const unit = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[transfer[2]] ?? 1;
      resolve({
        requestsPerSec: Number(rps[1]),
        bytesPerSec: Number(transfer[1]) * unit,
        requests: Number(total[1]),
        errors: (non2xx ? Number(non2xx[1]) : 0) + (sockErr ? sockErr.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
        errorText: [sockErr?.[0], non2xx?.[0]].filter(Boolean).join("; "),
      });
    });
  });
}

/** Writes a wrk Lua script that POSTs `bytes` bytes to every request, and returns its path. */
export function postScript(path: string, bytes: number): string {
  writeFileSync(path, `wrk.method = "POST"\nwrk.body = string.rep("x", ${bytes})\nwrk.headers["Content-Type"] = "application/octet-stream"\n`);
  return path;
}
