/**
 * The shell blocks of README.md, conductor(1)'s EXAMPLES and conductor(7)'s
 * RECIPES work as written, in a fresh shell, so that a recipe cannot rot:
 *
 * - every block that runs conductor or sets variables runs in bash with
 *   `set -u` and an empty environment, its commands recorded instead of run
 *   (all but the few that set variables: mktemp, head, base64, tr); what it
 *   sets must be set, every conductor command line must parse, the app's
 *   socket must be the one conductor waits for, and a JUPYTER_TOKEN must be
 *   the CONDUCTOR_TOKEN;
 * - the recipes whose programs CI has (Jupyter Server, redis) run for real,
 *   as alice, through a private sshd and a gateway, and a browser's request
 *   or redis-cli gets through.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import { parseClientArgs } from "../../src/client/cli.ts";
import { tokenProblem } from "../../src/lib/token.ts";
import { missing, program } from "../helpers/apps.ts";
import { defer, type Cleanup } from "../helpers/cleanup.ts";
import { userDir } from "../helpers/conductor.ts";
import { repoRoot } from "../helpers/env.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { bin } from "../helpers/install.ts";
import { nginxMissing, STREAM_MODULE } from "../helpers/nginx.ts";
import { startProcess, type TestProcess } from "../helpers/process.ts";
import { freePortRange } from "../helpers/streams.ts";
import { sshdMissing, startSshd, type TestSshd } from "../helpers/sshd.ts";

/** A shell block of a page, under its heading. */
interface Block {
  where: string;
  text: string;
}

/** The ```sh blocks of README.md. */
function readmeBlocks(): Block[] {
  const text = readFileSync(join(repoRoot, "README.md"), "utf8");
  const blocks: Block[] = [];
  let heading = "";
  for (const part of text.split(/^```/m).map((p, i) => ({ p, code: i % 2 === 1 }))) {
    if (part.code && part.p.startsWith("sh\n")) blocks.push({ where: `README.md, ${heading}`, text: part.p.slice(3) });
    if (!part.code) heading = [...part.p.matchAll(/^#+ (.*)$/gm)].at(-1)?.[1] ?? heading;
  }
  return blocks;
}

/** The literal blocks of section `section` of man page `page`, roff escapes undone; each under its subsection. */
function manBlocks(page: string, section: string): Block[] {
  const text = readFileSync(join(repoRoot, "man", page), "utf8");
  const start = text.indexOf(`.Sh ${section}\n`);
  assert.ok(start !== -1, `${page} has a section ${section}`);
  const body = text.slice(start, text.indexOf("\n.Sh ", start + 1));
  const blocks: Block[] = [];
  let heading = section;
  for (const m of body.matchAll(/^\.Ss (.*)$|^\.Bd -literal.*\n([\s\S]*?)^\.Ed$/gm)) {
    if (m[1] !== undefined) heading = m[1];
    else blocks.push({ where: `${page}, ${heading}`, text: m[2].replace(/\\\(dq/g, '"').replace(/\\&/g, "").replace(/\\-/g, "-").replace(/\\e/g, "\\") });
  }
  return blocks;
}

/** conductor(7)'s recipes, those that use `$dir` after the block that makes it. */
function recipes(): Block[] {
  const [preamble, ...rest] = manBlocks("conductor.7", "RECIPES");
  assert.match(preamble.text, /^dir=\$\(mktemp -d\)/);
  return rest.map((b) => ({ where: b.where, text: b.text.includes("$dir") ? preamble.text + b.text : b.text }));
}

/** The names a block assigns, at the start of a line (`name=...`, `export name=...`). */
function assigned(text: string): string[] {
  return [...new Set([...text.matchAll(/^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=/gm)].map((m) => m[1]))];
}

/** True when a block runs conductor or sets a variable: what the dry run is for. */
function worthRunning(text: string): boolean {
  return /^conductor\s/m.test(text) || assigned(text).length > 0;
}

/** Programs the dry run really runs: the ones the blocks set variables with. */
const REAL = ["mktemp", "head", "base64", "tr"];

/** What the dry run of a block recorded: the commands it ran, with their environments, and the values of what it set. */
interface DryRun {
  status: number | null;
  stderr: string;
  commands: Array<{ argv: string[]; env: Record<string, string> }>;
  values: Record<string, string>;
  home: string;
}

/** Runs `text` in bash (`set -u`, an empty environment, a PATH of {@link REAL} only); any other command is recorded instead of run. */
function dryRun(t: Cleanup, text: string): DryRun {
  const home = mkdtempSync(join(tmpdir(), "conductor-recipe-"));
  defer(t, () => rmSync(home, { recursive: true, force: true }));
  const path = join(home, ".bin");
  mkdirSync(path);
  for (const name of REAL) symlinkSync(spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).stdout.trim(), join(path, name));
  const record = join(home, ".commands");
  const values = join(home, ".values");
  const recorder = `require("fs").appendFileSync(process.env.RECORD_FILE, JSON.stringify({ argv: process.argv.slice(1), env: process.env }) + "\\n")`;
  const names = assigned(text);
  const script = [
    "set -u",
    `command_not_found_handle() { "$RECORD_NODE" -e '${recorder}' "$@"; }`,
    text,
    `for v in ${names.join(" ")}; do printf '%s=%s\\n' "$v" "\${!v}"; done > "$RECORD_VALUES"`,
  ].join("\n");
  const run = spawnSync("/bin/bash", ["-c", script], {
    cwd: home, encoding: "utf8",
    env: { PATH: path, HOME: home, USER: "ann", TMPDIR: home, RECORD_NODE: process.execPath, RECORD_FILE: record, RECORD_VALUES: values },
  });
  const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);
  return {
    status: run.status,
    stderr: run.stderr,
    commands: lines(record).map((l) => JSON.parse(l) as DryRun["commands"][number]),
    values: Object.fromEntries(lines(values).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)])),
    home,
  };
}

test("every shell block of the README, conductor(1) and conductor(7) that runs conductor or sets variables works in a fresh shell", (t) => {
  const blocks = [...readmeBlocks(), ...manBlocks("conductor.1", "EXAMPLES"), ...recipes()].filter((b) => worthRunning(b.text));
  assert.ok(blocks.length >= 15, `the blocks are found: ${blocks.length}`);
  let runs = 0;
  for (const block of blocks) {
    const result = dryRun(t, block.text);
    assert.equal(result.stderr, "", `${block.where}: the shell said something:\n${block.text}`);
    assert.equal(result.status, 0, `${block.where}: exit status ${result.status}`);
    for (const name of assigned(block.text)) assert.notEqual(result.values[name] ?? "", "", `${block.where}: ${name} is set, and not empty`);
    for (const { argv, env } of result.commands.filter((c) => c.argv[0] === "conductor")) {
      const command = parseClientArgs(argv.slice(1), result.home);
      if (command.kind !== "run") continue;
      runs++;
      const { appSocket } = command.options;
      assert.ok(existsSync(dirname(appSocket)), `${block.where}: the socket's directory ${dirname(appSocket)} exists`);
      for (const arg of command.options.command.filter((a) => /\.sock\b/.test(a))) {
        assert.ok(arg.includes(appSocket), `${block.where}: the app's socket ${arg} is conductor's ${appSocket}`);
      }
      if (env.CONDUCTOR_TOKEN !== undefined) assert.equal(tokenProblem(env.CONDUCTOR_TOKEN), null, `${block.where}: CONDUCTOR_TOKEN is fit`);
      if (env.JUPYTER_TOKEN !== undefined) assert.equal(env.JUPYTER_TOKEN, env.CONDUCTOR_TOKEN, `${block.where}: Jupyter's token is the gateway's`);
    }
  }
  assert.ok(runs >= 12, `the runs are found: ${runs}`);
});

/** The block of `blocks` that holds `needle`, and the one after it. */
function pick(blocks: Block[], needle: string): [Block, Block | undefined] {
  const i = blocks.findIndex((b) => b.text.includes(needle));
  assert.notEqual(i, -1, `a block holds ${needle}`);
  return [blocks[i], blocks[i + 1]];
}

/** What a recipe run for real left to look at. */
interface RealRun {
  shell: TestProcess;
  /** The values of what the block set, as conductor started. */
  values: Record<string, string>;
  live: { auth: string; urls: string[]; port?: number };
}

/**
 * Runs `block` for real as alice in bash (`set -u`): `conductor` is the built
 * one, given the private sshd's options and the gateway for gw.example.org;
 * `jupyter lab` is Debian's jupyter-server. Resolves once it is live.
 */
async function runForReal(t: Cleanup, sshd: TestSshd, gw: TestGateway, block: Block): Promise<RealRun> {
  const dir = userDir(t, "alice");
  const shims = mkdtempSync(join(tmpdir(), "conductor-shims-"));
  defer(t, () => rmSync(shims, { recursive: true, force: true }));
  chmodSync(shims, 0o755);
  writeFileSync(join(shims, "jupyter"), `#!/bin/sh\ncase "$1" in lab|server) shift ;; esac\nexec ${program("jupyter-server")} "$@"\n`, { mode: 0o755 });
  const files = { vars: join(dir, "vars"), pid: join(dir, "pid") };
  const script = [
    "set -u",
    `conductor() {
      local v a args=()
      for v in ${assigned(block.text).join(" ")}; do printf '%s=%s\\n' "$v" "\${!v}"; done > "${files.vars}"
      for a in "$@"; do [ "$a" = gw.example.org ] && a="$TEST_GATEWAY"; args+=("$a"); done
      "${process.execPath}" "${bin("conductor")}" $TEST_SSH_ARGS "\${args[@]}" &
      echo $! > "${files.pid}"
      wait $!
    }`,
    block.text,
  ].join("\n");
  const shell = startProcess(t, "/bin/bash", ["-c", script], {
    user: "alice", cwd: dir,
    env: {
      PATH: `${shims}:/usr/bin:/bin`, XDG_STATE_HOME: join(dir, "state"),
      TEST_GATEWAY: `${sshd.loginName("alice")}@127.0.0.1:${sshd.port}${gw.controlPath}`,
      TEST_SSH_ARGS: sshd.clientOptions("alice").map((o) => `-o${o}`).join(" "),
    },
  });
  defer(t, async () => {
    // conductor stops its app and the SSH connection; bash then ends.
    if (existsSync(files.pid)) try { process.kill(Number(readFileSync(files.pid, "utf8")), "SIGTERM"); } catch { /* gone */ }
    await shell.exited;
  });
  const event = await shell.waitForJson((e) => e.state === "live" || e.state === "failed", 120_000)
    .catch((err: Error) => { throw new Error(`${block.where}: ${err.message}\n${shell.stderr.join("\n")}`); });
  assert.equal(event.state, "live", `${block.where}: ${JSON.stringify(event)}\n${shell.stderr.join("\n")}`);
  const values = Object.fromEntries(readFileSync(files.vars, "utf8").split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  if (values.dir !== undefined) defer(t, () => rmSync(values.dir, { recursive: true, force: true }));
  return { shell, values, live: event.config as RealRun["live"] };
}

const jupyterSkip = sshdMissing || missing("jupyter-server");

for (const [name, blocks] of [["README.md", readmeBlocks], ["conductor(7)", recipes]] as const) {
  test(`${name}'s Jupyter recipe, run as written: Jupyter takes the gateway's token, and a browser holding it gets in`, { skip: jupyterSkip, timeout: 180_000 }, async (t) => {
    const sshd = await startSshd(t);
    const gw = await startGateway(t);
    const [recipe] = pick(blocks(), "jupyter lab --no-browser");
    const { values, live } = await runForReal(t, sshd, gw, recipe);
    assert.equal(values.CONDUCTOR_TOKEN, live.auth, "conductor's token is CONDUCTOR_TOKEN");
    assert.equal(values.JUPYTER_TOKEN, live.auth, "Jupyter's token is the same");
    const host = live.urls[0];
    const ask = (token: string) => request({ port: gw.port, host, path: "/api/status", headers: { Cookie: `authorization=${live.auth}`, Authorization: `token ${token}` } });
    const status = await ask(live.auth);
    assert.equal(status.status, 200, status.text);
    assert.equal((await ask("not-the-token-0123456789")).status, 403, "Jupyter checks its token, and it is the gateway's");
  });
}

const redisSkip = sshdMissing || nginxMissing || missing("redis-server", "redis-cli") || (existsSync(STREAM_MODULE) ? false : "nginx's stream module is not installed (apt-get install libnginx-mod-stream)");

for (const [name, blocks] of [["README.md", readmeBlocks], ["conductor(7)", recipes]] as const) {
  test(`${name}'s redis recipe, run as written: redis-cli reaches it through the gateway's port with the password`, { skip: redisSkip, timeout: 180_000 }, async (t) => {
    const sshd = await startSshd(t);
    const range = await freePortRange(2);
    const gw = await startGateway(t, { args: ["--port-range", range.text, "--stream-host", "127.0.0.1"] });
    const [recipe, client] = pick(blocks(), "redis-server");
    assert.match(client?.text ?? "", /^redis-cli /, `${name}: the client's block follows the recipe`);
    const { values, live } = await runForReal(t, sshd, gw, recipe);
    assert.match(values.pass, /^[a-zA-Z0-9]{20,}$/, "a password of 20 letters and digits or more");
    const cli = startProcess(t, "/bin/bash", ["-c", [
      `redis-cli() { local a args=(); for a in "$@"; do case "$a" in gw.example.org) a=127.0.0.1 ;; 9003) a=${live.port} ;; esac; args+=("$a"); done; command redis-cli "\${args[@]}"; }`,
      client!.text,
    ].join("\n")], { user: "alice", stdin: true, env: { PATH: "/usr/bin:/bin" } });
    cli.child.stdin!.end(values.pass + "\n");
    await cli.exited;
    await cli.closed;
    assert.deepEqual(cli.stdout.filter(Boolean), ["PONG"], cli.stderr.join("\n"));
    const without = startProcess(t, program("redis-cli"), ["-h", "127.0.0.1", "-p", String(live.port), "ping"], { user: "alice" });
    await without.closed;
    assert.match(without.stdout.join("\n"), /NOAUTH/, "without the password, redis refuses");
  });
}
