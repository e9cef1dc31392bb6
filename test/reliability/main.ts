/**
 * `npm run reliability`: the reliability and hostile-input tests, at a larger
 * size than in `npm test` (more fuzz cases, more faults, a longer soak), one
 * at a time, then test/RELIABILITY.md rendered from the figures they record.
 * Sizes come from the environment when set (CONDUCTOR_FUZZ_CASES,
 * CONDUCTOR_FAULTS, CONDUCTOR_SOAK_SECONDS); `--render` only renders the
 * figures of the last run (of `npm test`, say).
 *
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { distDir, repoRoot } from "../helpers/env.ts";
import { figuresDir } from "./report.ts";

/** The test files of the reliability run, and the sizes it uses unless the environment says otherwise. */
const FILES = ["reliability/fuzz_test", "reliability/faults_test", "reliability/soak_test", "e2e/attackers_test", "e2e/disk_full_test", "control/flood_test"];
const SIZES: Record<string, string> = { CONDUCTOR_FUZZ_CASES: "20000", CONDUCTOR_FAULTS: "30", CONDUCTOR_SOAK_SECONDS: "180" };
const OUTPUT = join(repoRoot, "test", "RELIABILITY.md");
const RESULTS = join(figuresDir, "results.json");

/** A top-level test and how it ended. */
interface Result {
  name: string;
  outcome: "passed" | "FAILED" | "skipped";
}

/** Runs the files one at a time with node's test runner; returns the top-level results and whether the runner succeeded. */
async function runTests(env: NodeJS.ProcessEnv): Promise<{ results: Result[]; ok: boolean }> {
  const files = FILES.map((f) => join(distDir, "test", f + ".js"));
  const child = spawn(process.execPath, ["--test", "--test-concurrency=1", "--test-timeout=1800000", "--test-reporter=tap", ...files],
    { env, stdio: ["ignore", "pipe", "inherit"] });
  const results: Result[] = [];
  const read = (line: string): void => {
    // Top-level lines only; a file that failed as a whole is named by its path.
    const m = /^(ok|not ok) \d+ - (.*?)(?: # (SKIP|TODO)\b.*)?$/.exec(line);
    if (m !== null) results.push({ name: m[2], outcome: m[3] !== undefined ? "skipped" : m[1] === "ok" ? "passed" : "FAILED" });
  };
  let partial = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    process.stdout.write(chunk);
    const lines = (partial + chunk).split("\n");
    partial = lines.pop()!;
    lines.forEach(read);
  });
  // "close", not "exit": the last lines of the report may still be in the pipe when the process exits.
  const code = await new Promise((resolve) => child.on("close", resolve));
  read(partial);
  return { results, ok: code === 0 };
}

function figures(name: string): Record<string, any> | null {
  const path = join(figuresDir, `${name}.json`);
  return existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : null;
}

const n = (x: number): string => x.toLocaleString("en-US");

/** test/RELIABILITY.md from the recorded figures and test results. */
function render(results: Result[]): string {
  const fuzz = figures("fuzz");
  const faults = figures("faults");
  const soak = figures("soak");
  const out: string[] = [
    "# Reliability figures",
    "",
    `Written by \`npm run reliability\` on ${new Date().toISOString().slice(0, 10)}, on a ${cpus().length}-core machine with Node ${process.version}; do not edit by hand.`,
    "The machine is shared and noisy: the figures say what was done and that nothing failed, not how fast.",
    "Each test is in `test/reliability/` or named below, and repeats a run from its seed (`CONDUCTOR_FUZZ_SEED`, `CONDUCTOR_FAULTS_SEED`).",
    "",
    "| test | what was done | failures |",
    "|---|---|---|",
  ];
  if (fuzz !== null) {
    out.push(`| fuzz (seed ${fuzz.seed}) | ${n(fuzz.httpCases)} random and mutated HTTP heads, cookies and Host values; ${n(fuzz.controlCases)} control-socket lines; ${n(fuzz.validInterleaved)} valid requests interleaved; open descriptors outside the keep-alive pool ${fuzz.fdsBefore} before, ${fuzz.fdsAfter} after | ${fuzz.failures} |`);
  }
  if (faults !== null) {
    const kinds = Object.entries(faults.faultsByKind as Record<string, number>).map(([k, v]) => `${v} × ${k}`).join(", ");
    out.push(`| faults under load (seed ${faults.seed}) | ${faults.faultsInjected} SIGKILLs (${kinds}) during ${n(faults.requests)} requests through nginx; longest recovery ${(faults.longestRecoveryMs / 1000).toFixed(1)} s | ${faults.failures} |`);
  }
  if (soak !== null) {
    out.push(`| soak | ${soak.seconds} s, ${n(soak.requests)} requests, ${soak.masterKills} SSH masters killed, ${soak.registrationsChurned} routes registered and dropped; memory reachable after a full collection ${soak.liveMiBEarly} → ${soak.liveMiBLate} MiB (resident ${soak.rssMiBEarly} → ${soak.rssMiBLate} MiB), descriptors ${soak.fdsEarly} → ${soak.fdsLate} | ${soak.failures} |`);
  }
  if (faults !== null) {
    out.push("", "## Requests under faults", "",
      "Every request ends in one of these; any other end (a hang, a corrupted body, another status, no answer while nginx and the gateway run) is a failure.", "",
      "| outcome | requests |", "|---|---|",
      `| 200, body checked | ${n(faults.ok)} |`,
      `| 502, 503 or 504 from nginx or the gateway | ${n(faults.clean5xx)} |`,
      `| cut after the response head (the fault hit a response in flight) | ${n(faults.cutAfterHead)} |`,
      `| no answer while nginx itself was down | ${n(faults.noAnswerWhileNginxDown)} |`,
      `| an upload cut while conductor-server was down (nginx's 502 came while the body was still being sent) | ${n(faults.uploadCutWhileGatewayDown ?? 0)} |`,
      `| GETs sent again because their kept-alive connection was closed under them, as browsers do (counted above by their second try) | ${n(faults.retriedOnClosedKeepAlive)} |`,
      `| failures | ${faults.failures} |`);
  }
  if (fuzz !== null) {
    out.push("", "## Fuzz answers", "", "| answer | cases |", "|---|---|",
      ...Object.entries(fuzz.statuses as Record<string, number>).map(([s, c]) => `| ${s === "0" ? "closed without an answer (allowed: a mutated request may never be complete)" : s} | ${n(c)} |`),
      ...Object.entries(fuzz.controlReplies as Record<string, number>).map(([s, c]) => `| control socket: ${s} | ${n(c)} |`));
  }
  if (results.length > 0) {
    out.push("", "## Tests of the run", "", "| test | result |", "|---|---|",
      ...results.map((r) => `| ${r.name.replaceAll("|", "\\|")} | ${r.outcome} |`));
  }
  return out.join("\n") + "\n";
}

const renderOnly = process.argv.includes("--render");
let results: Result[] = [];
let ok = true;
if (renderOnly) {
  if (existsSync(RESULTS)) results = JSON.parse(readFileSync(RESULTS, "utf8"));
  ok = results.length > 0 && results.every((r) => r.outcome === "passed");
} else {
  // Figures of an earlier run must not pass for this one's.
  rmSync(figuresDir, { recursive: true, force: true });
  const env = { ...process.env };
  for (const [k, v] of Object.entries(SIZES)) env[k] ??= v;
  const run = await runTests(env);
  results = run.results;
  ok = run.ok && results.length > 0 && results.every((r) => r.outcome === "passed");
  mkdirSync(figuresDir, { recursive: true });
  writeFileSync(RESULTS, JSON.stringify(results, null, 2) + "\n");
}
writeFileSync(OUTPUT, render(results));
process.stdout.write(`Wrote ${OUTPUT}${ok ? "" : "; some tests failed or were skipped (the reliability run needs root, sshd and nginx)"}\n`);
process.exitCode = ok ? 0 : 1;
