/**
 * The manual pages: clean under `mandoc -T lint`, and in step with each
 * program's --help (every option in one is in the other).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { AGENT_HELP } from "../src/agent/cli.ts";
import { CLIENT_HELP } from "../src/client/cli.ts";
import { SERVER_HELP } from "../src/server/cli.ts";
import { VERSION } from "../src/lib/version.ts";
import { repoRoot } from "./helpers/env.ts";

const manDir = join(repoRoot, "man");
const hasMandoc = spawnSync("mandoc", ["-V"]).error === undefined;

for (const page of readdirSync(manDir).filter((f) => /\.[1-8]$/.test(f))) {
  test(`man/${page} is clean under mandoc -T lint`, { skip: !hasMandoc && "mandoc is not installed (apt-get install mandoc)" }, () => {
    // mandoc prints its findings on stdout when that is not a terminal, on stderr otherwise.
    const result = spawnSync("mandoc", ["-T", "lint", "-W", "warning", join(manDir, page)], { encoding: "utf8" });
    const problems = (result.stdout + result.stderr).split("\n").filter((l) => l !== "" && !l.includes("mandoc.db"));
    assert.deepEqual(problems, []);
  });
}

/** Long options a help text defines (lines starting with "  -x, --name" or "  --name"). */
function helpOptions(help: string): Set<string> {
  return new Set([...help.matchAll(/^ {2,6}(?:-[A-Za-z], )?(--[a-z][a-z-]*)/gm)].map((m) => m[1]));
}

/** Long options a man page documents with `Fl \-name`. */
function manOptions(page: string): Set<string> {
  const text = readFileSync(join(manDir, page), "utf8");
  return new Set([...text.matchAll(/Fl \\-([a-z][a-z-]*)/g)].map((m) => "--" + m[1]));
}

for (const [program, help, page] of [["conductor-server", SERVER_HELP, "conductor-server.8"], ["conductor", CLIENT_HELP, "conductor.1"], ["conductor-agent", AGENT_HELP, "conductor-agent.1"]] as const) {
  test(`${program} --help and man/${page} name the same options`, () => {
    assert.ok(helpOptions(help).has("--help") && helpOptions(help).size > 3, "the help's options are found");
    assert.deepEqual([...manOptions(page)].sort(), [...helpOptions(help)].sort());
  });
}

for (const [program, help] of [["conductor-server", SERVER_HELP], ["conductor", CLIENT_HELP], ["conductor-agent", AGENT_HELP]] as const) {
  test(`${program} --help prints the help text and --version the package version`, () => {
    const bin = join(repoRoot, "dist", "src", "bin", `${program}.js`);
    assert.equal(execFileSync(process.execPath, [bin, "--help"], { encoding: "utf8" }), help);
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string };
    assert.equal(VERSION, pkg.version);
    assert.equal(execFileSync(process.execPath, [bin, "--version"], { encoding: "utf8" }), `${program} ${pkg.version}\n`);
  });
}

test("conductor-server refuses a bad command line with exit status 2 and says what to do", () => {
  const bin = join(repoRoot, "dist", "src", "bin", "conductor-server.js");
  for (const args of [["--port", "http"], ["--sock-group", "www-data"], ["--frobnicate"], ["--ssl-cert-file", "x.pem"], ["-d", "{key}.example.org"]]) {
    const r = spawnSync(process.execPath, [bin, ...args, "-r", "/nonexistent/conductor-test"], { encoding: "utf8" });
    assert.equal(r.status, 2, args.join(" "));
    assert.match(r.stderr, /^conductor-server: .*\nTry 'conductor-server --help'\.\n$/, r.stderr);
  }
});

test("conductor-server names the option whose path it cannot use, and exits 1", (t) => {
  const bin = join(repoRoot, "dist", "src", "bin", "conductor-server.js");
  // The gateway may create its state directory before it fails: a temporary one, removed after.
  const stateDir = mkdtempSync(join(tmpdir(), "conductor-man-state-"));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const state = ["--state-dir", join(stateDir, "state")];
  const cases: Array<[string[], RegExp]> = [
    [["-s", "/nonexistent/conductor-test/h.sock", "-r", "/nonexistent/conductor-test"], /Cannot listen on --sock \/nonexistent\/conductor-test\/h\.sock: \/nonexistent\/conductor-test is not a directory; create it/],
    [["-p", "0", "-b", "127.0.0.1", "-r", "/etc/passwd/run"], /Cannot use the runtime directory \/etc\/passwd\/run: ENOTDIR.*choose another with --runtime-dir/],
  ];
  for (const [args, reason] of cases) {
    const r = spawnSync(process.execPath, [bin, ...args, ...state], { encoding: "utf8" });
    assert.equal(r.status, 1, args.join(" "));
    assert.match(r.stderr, reason);
  }
});

test("conductor refuses a bad command line with exit status 2 and says what to do", () => {
  const bin = join(repoRoot, "dist", "src", "bin", "conductor.js");
  for (const args of [["gw"], ["-k", "no_underscores", "gw", "/s", "--", "x"], ["-oProxyCommand", "gw", "/s", "--", "x"], ["-x"]]) {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
    assert.equal(r.status, 2, args.join(" "));
    assert.match(r.stderr, /^conductor: .*\nTry 'conductor --help'\.\n$/s, r.stderr);
  }
});
