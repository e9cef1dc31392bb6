/**
 * The release tarball, built with `make dist` in a copy of the sources from
 * the JavaScript the suite compiled, for the tests that install it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VERSION } from "../../src/lib/version.ts";
import { defer, type Cleanup } from "./cleanup.ts";
import { distDir, repoRoot } from "./env.ts";

/** A fresh directory every user can read; removed when `t` ends. */
export function openDir(t: Cleanup, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs `command` and fails with its output when it does not exit 0. */
export function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = spawnSync(command, args, { cwd: options.cwd, env: options.env ?? process.env, encoding: "utf8" });
  assert.equal(result.status, 0, `${command} ${args.join(" ")} exited ${result.status}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/**
 * A copy of the source tree with the JavaScript the suite already compiled,
 * newer than the sources, so that make gathers it without running tsc.
 * With `touchedAt`, every file's times are set to that moment first.
 */
function sourceCopy(t: Cleanup, touchedAt?: Date): string {
  const dir = openDir(t, "conductor-src-");
  for (const name of ["src", "make", "man", "contrib", "Makefile", "README.md", "LICENSE", "package.json", "tsconfig.json"]) {
    cpSync(join(repoRoot, name), join(dir, name), { recursive: true });
  }
  if (touchedAt !== undefined) touchAll(dir, touchedAt);
  cpSync(join(distDir, "src"), join(dir, "dist", "src"), { recursive: true });
  return dir;
}

function touchAll(path: string, when: Date): void {
  utimesSync(path, when, when);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory()) touchAll(join(path, entry.name), when);
    else utimesSync(join(path, entry.name), when, when);
  }
}

/** Builds the release tarball in a copy of the sources; returns its path. */
export function buildTarball(t: Cleanup, touchedAt?: Date): string {
  const dir = sourceCopy(t, touchedAt);
  run("make", ["dist"], { cwd: dir, env: { ...process.env, SOURCE_DATE_EPOCH: "1767225600" } });
  return join(dir, `conductor-${VERSION}.tar.gz`);
}

