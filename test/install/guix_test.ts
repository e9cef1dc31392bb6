/**
 * The GNU Guix files, contrib/guix/conductor.scm (the package) and
 * contrib/guix/service.scm (the system service), read with Guile's own
 * reader: Guix is not installed here, so nothing is evaluated, but a syntax
 * error (an unbalanced parenthesis, a bad `#` form) fails, and the data must
 * hold the package, its license, the service type, and only options that
 * conductor-server has. test/install/read-scheme.scm does the reading and
 * prints one fact a line.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { defer, type Cleanup } from "../helpers/cleanup.ts";
import { distDir, repoRoot } from "../helpers/env.ts";

/** Debian's package guile-3.0 installs the interpreter as guile-3.0 (and guile through alternatives). */
const GUILE = "guile-3.0";
const skip = which(GUILE) === null ? `${GUILE} is not installed (apt-get install guile-3.0)` : false;

const READER = join(repoRoot, "test", "install", "read-scheme.scm");
const PACKAGE_FILE = join(repoRoot, "contrib", "guix", "conductor.scm");
const SERVICE_FILE = join(repoRoot, "contrib", "guix", "service.scm");

/** The first `name` on the PATH, or null. */
function which(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir !== "" && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

interface Reading {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Reads `file` with Guile (read-scheme.scm); `write` prints the data instead of the facts. */
function readScheme(file: string, write = false): Reading {
  const args = ["--no-auto-compile", "-s", READER, file, ...(write ? ["--write"] : [])];
  const result = spawnSync(GUILE, args, { encoding: "utf8", env: { ...process.env, GUILE_AUTO_COMPILE: "0" } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The facts of a file that must read: fails with Guile's message when it does not. */
function facts(file: string): string[] {
  const reading = readScheme(file);
  assert.equal(reading.status, 0, `${file} does not read as Scheme:\n${reading.stderr}`);
  return reading.stdout.split("\n").filter((line) => line !== "");
}

/** A fresh directory; removed when `t` ends. */
function scratch(t: Cleanup): string {
  const dir = mkdtempSync(join(tmpdir(), "conductor-guix-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("the reader takes Guix's G-expression syntax (#~ #$ #$@ #+ #+@) as the forms it abbreviates", { skip }, (t) => {
  const file = join(scratch(t), "gexp.scm");
  writeFileSync(file, '(define x #~(list #$output #$@flags #+esbuild #+@tools #:key #o755 "--a"))\n;; comment\n#;(skipped)\nx\n');
  const reading = readScheme(file, true);
  assert.equal(reading.status, 0, reading.stderr);
  assert.equal(reading.stdout,
    '(define x (gexp (list (ungexp output) (ungexp-splicing flags) (ungexp-native esbuild) (ungexp-native-splicing tools) #:key 493 "--a")))\nx\n');
});

test("contrib/guix/conductor.scm reads as Scheme, defines the package conductor under the Expat (MIT) license, and ends with it", { skip }, () => {
  const lines = facts(PACKAGE_FILE);
  assert.ok(lines.includes("form define conductor"), `no (define conductor ...):\n${lines.join("\n")}`);
  assert.ok(lines.includes("package conductor"), `no (package (name "conductor") ...):\n${lines.join("\n")}`);
  assert.ok(lines.includes("license license:expat"), `the package's license is not license:expat:\n${lines.join("\n")}`);
  assert.match(readFileSync(join(repoRoot, "LICENSE"), "utf8"), /^MIT License\n/, "LICENSE is no longer MIT: change the package's license");
  assert.equal(lines.at(-1), "last conductor", "guix build -f takes the file's last value: it must be the package");
});

test("contrib/guix/service.scm reads as Scheme, defines conductor-service-type, and passes conductor-server only options it has", { skip }, () => {
  const lines = facts(SERVICE_FILE);
  assert.ok(lines.includes("service-type conductor-service-type"), `no (define conductor-service-type (service-type ...)):\n${lines.join("\n")}`);
  assert.ok(lines.includes("form define-configuration/no-serialization conductor-configuration"), `no conductor-configuration:\n${lines.join("\n")}`);
  const options = lines.filter((line) => line.startsWith("option ")).map((line) => line.slice("option ".length));
  for (const expected of ["--runtime-dir", "--state-dir", "--domain", "--sock", "--sock-group", "--trust-forwarded"]) {
    assert.ok(options.includes(expected), `the service never passes ${expected}`);
  }
  const help = spawnSync(process.execPath, [join(distDir, "src", "bin", "conductor-server.js"), "--help"], { encoding: "utf8" });
  assert.equal(help.status, 0, help.stderr);
  const known = new Set(help.stdout.match(/--[a-z][a-z-]*/g) ?? []);
  for (const option of options) assert.ok(known.has(option), `service.scm passes ${option}, which conductor-server --help does not list`);
});

test("a copy of conductor.scm with one parenthesis missing or one too many does not read, and the reader says where", { skip }, (t) => {
  const dir = scratch(t);
  const text = readFileSync(PACKAGE_FILE, "utf8");
  const lastClose = text.lastIndexOf(")");
  assert.ok(lastClose > 0);

  const missing = join(dir, "missing.scm");
  writeFileSync(missing, text.slice(0, lastClose) + text.slice(lastClose + 1));
  const short = readScheme(missing);
  assert.equal(short.status, 1, `a missing ")" was not noticed:\n${short.stdout}`);
  assert.match(short.stderr, /missing\.scm:\d+:\d+: .*end of input/);

  const extra = join(dir, "extra.scm");
  writeFileSync(extra, text.replace("(define conductor\n", "(define conductor)\n"));
  const long = readScheme(extra);
  assert.equal(long.status, 1, `a stray ")" was not noticed:\n${long.stdout}`);
  assert.match(long.stderr, /extra\.scm:\d+:\d+: unexpected "\)"/);
});
