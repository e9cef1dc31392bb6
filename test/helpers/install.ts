/**
 * A copy of the compiled tree that every user can read, for running the
 * gateway and clients as other users: the repository may sit under a private
 * home directory. Runtime needs nothing but `dist/` (no dependencies).
 *
 * @module
 */
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { distDir, isRoot, repoRoot } from "./env.ts";

let installed: string | null = null;

/**
 * Path of a world-readable copy of `dist/`, with `contrib/` beside `src/` and a package.json that marks the files as
 * ES modules (the originals when not root); removed at exit.
 */
export function publicDist(): string {
  if (!isRoot) return distDir;
  if (installed !== null) return installed;
  const dir = mkdtempSync(join(tmpdir(), "conductor-dist-"));
  cpSync(distDir, dir, { recursive: true });
  cpSync(join(repoRoot, "contrib"), join(dir, "contrib"), { recursive: true });
  // The compiled files are ES modules: without this, Node before 20.19 (or 22.12) loads them as CommonJS.
  writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
  openUp(dir);
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  installed = dir;
  return dir;
}

/** The path of a program of the package in the public copy, e.g. `bin("conductor-server")`. */
export function bin(name: string): string {
  return join(publicDist(), "src", "bin", `${name}.js`);
}

/** The path of a test fixture script in the public copy, e.g. `fixture("client")`. */
export function fixture(name: string): string {
  return join(publicDist(), "test", "fixtures", `${name}.js`);
}

/** The path of a file of `contrib/` that every user can run, e.g. `contrib("websockify-unix")`. */
export function contrib(name: string): string {
  return isRoot ? join(publicDist(), "contrib", name) : join(repoRoot, "contrib", name);
}

function openUp(path: string): void {
  const st = statSync(path);
  chmodSync(path, st.isDirectory() || (st.mode & 0o100) !== 0 ? 0o755 : 0o644);
  if (st.isDirectory()) for (const name of readdirSync(path)) openUp(join(path, name));
}
