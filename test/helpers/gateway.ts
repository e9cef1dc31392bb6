/**
 * conductor-server for end-to-end tests: started from the built files as
 * user `conductor` (when root), in a fresh runtime directory it owns.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { chownSync, mkdtempSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defer, type Cleanup } from "./cleanup.ts";
import { account } from "./accounts.ts";
import { isRoot } from "./env.ts";
import { bin } from "./install.ts";
import { startProcess, type TestProcess } from "./process.ts";

/** A gateway under test. */
export interface TestGateway {
  process: TestProcess;
  /** TCP port of the front end (0 with `--sock`). */
  port: number;
  runtimeDir: string;
  /** The control socket. */
  controlPath: string;
  /** A host name of route `key` of `user` under the default pattern. */
  host(key: string, user: string): string;
  /** Stops the gateway (SIGTERM) and waits for it. */
  stop(): Promise<void>;
}

/** Options of {@link startGateway}. */
export interface GatewayStart {
  /** Extra command-line arguments. */
  args?: string[];
  /** Use this runtime directory instead of a fresh one. */
  runtimeDir?: string;
  env?: NodeJS.ProcessEnv;
  /** Supplementary groups of the gateway's user (as root). */
  groups?: string[];
  /** Options for node itself, before the program (e.g. `--inspect=127.0.0.1:0`). */
  nodeArgs?: string[];
  /** Run this executable (an installed launcher) instead of the built conductor-server with node. */
  program?: string;
  /** A command the gateway runs under, e.g. `["prlimit", "--nofile=64", "--"]`. */
  wrapper?: string[];
}

/** The options of `args` that say where the streams' nginx is (--nginx, --stream-module), for --stop-streams. */
function streamOptions(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) if (args[i] === "--nginx" || args[i] === "--stream-module") out.push(args[i], args[++i]);
  return out;
}

/** A fresh runtime directory owned by the gateway's user; removed when `t` ends. */
export function makeRuntimeDir(t: Cleanup): string {
  const dir = mkdtempSync(join(tmpdir(), "conductor-rt-"));
  chmodSync(dir, 0o755);
  if (isRoot) {
    const c = account("conductor");
    chownSync(dir, c.uid, c.gid);
  }
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts conductor-server on a free port and waits until it listens. */
export async function startGateway(t: Cleanup, options: GatewayStart = {}): Promise<TestGateway> {
  const runtimeDir = options.runtimeDir ?? makeRuntimeDir(t);
  // Streams only where a test asks for them (with its own ports): their nginx would take the default range.
  const streams = options.args?.includes("--port-range") ?? false;
  const args = ["-r", runtimeDir, "--state-dir", join(runtimeDir, "state"), "-p", "0", "-b", "127.0.0.1", "-v", ...(streams ? [] : ["--no-streams"]), ...(options.args ?? [])];
  const command = options.program !== undefined ? [options.program, ...args] : [process.execPath, ...(options.nodeArgs ?? []), bin("conductor-server"), ...args];
  const [program, ...rest] = [...(options.wrapper ?? []), ...command];
  if (streams) {
    // The streams' nginx outlives the gateway on purpose: end it when the test ends.
    const stopArgs = ["-r", runtimeDir, "--stop-streams", ...streamOptions(options.args ?? [])];
    const stopCommand = options.program !== undefined ? [options.program, ...stopArgs] : [process.execPath, bin("conductor-server"), ...stopArgs];
    const owner = isRoot ? account("conductor") : undefined;
    defer(t, () => { spawnSync(stopCommand[0], stopCommand.slice(1), { stdio: "ignore", uid: owner?.uid, gid: owner?.gid }); });
  }
  const proc = startProcess(t, program, rest, { user: "conductor", env: options.env, groups: options.groups });
  const ready = await proc.waitForJson((l) => l.msg === "gateway listening", 60_000, "stderr");
  const port = typeof ready.port === "number" ? ready.port : 0;
  const domains = ready.domains as string[];
  return {
    process: proc,
    port,
    runtimeDir,
    controlPath: join(runtimeDir, "client"),
    host: (key, user) => domains[0].replace("{key}", key).replace("{user}", user),
    stop: () => proc.stop(),
  };
}
