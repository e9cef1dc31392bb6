/**
 * Runs the test suite: every compiled `*_test.js` under dist/test, through
 * node's test runner. Arguments filter the files by substring, e.g.
 * `npm test -- e2e/http` runs only the HTTP end-to-end tests.
 *
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTests(path));
    else if (entry.name.endsWith("_test.js")) out.push(path);
  }
  return out.sort();
}

const filters = process.argv.slice(2);
const files = findTests(root).filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)));
if (files.length === 0) {
  process.stderr.write(`No test file matches ${filters.join(", ")}\n`);
  process.exit(1);
}
// A test that hangs fails after 5 minutes, where node can say so (--test-timeout: Node 20.11 and later).
const timeout = spawnSync(process.execPath, ["--test-timeout=1", "--eval", ""]).status === 0 ? ["--test-timeout=300000"] : [];
if (timeout.length === 0) process.stderr.write(`Node.js ${process.version} has no --test-timeout: a test that hangs is not stopped\n`);
const child = spawn(process.execPath, ["--test", "--test-concurrency=4", ...timeout, ...files], { stdio: "inherit" });
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
