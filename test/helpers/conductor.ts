/**
 * `conductor` (the client) for end-to-end tests: run as a test user against
 * the private sshd and a gateway, with the test app as its command.
 *
 * @module
 */
import { mkdtempSync, rmSync, chownSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defer, type Cleanup } from "./cleanup.ts";
import { account, type AccountName } from "./accounts.ts";
import { isRoot } from "./env.ts";
import type { TestGateway } from "./gateway.ts";
import { bin, fixture } from "./install.ts";
import { startProcess, type TestProcess } from "./process.ts";
import type { TestSshd } from "./sshd.ts";

/** Options of {@link startConductor}. */
export interface ConductorStart {
  /** Run as this user (when root). Default alice. */
  user?: AccountName;
  key?: string;
  token?: string;
  /** Extra conductor arguments before the gateway. */
  args?: string[];
  /** The app command; default the test app. */
  command?: string[];
  /** Use this app socket path instead of a fresh one. */
  appSocket?: string;
  env?: NodeJS.ProcessEnv;
  /** Run this executable (an installed launcher) instead of the built conductor with node. */
  program?: string;
  /** ssh options instead of the private sshd's defaults for the user (identity, known hosts). */
  sshOptions?: string[];
}

/** A running client. */
export interface TestConductor {
  process: TestProcess;
  appSocket: string;
  /** The user's private home-like directory holding the app socket. */
  dir: string;
  /** The environment of the run's state (XDG_STATE_HOME): give it to `conductorCommand` to see its services. */
  stateEnv: NodeJS.ProcessEnv;
  /** Waits for the n-th (1-based) `live` event and returns it. */
  live(n?: number, timeoutMs?: number): Promise<{ auth: string; key: string; urls: string[]; name?: string; fingerprint?: string }>;
  events(): Array<Record<string, unknown>>;
}

/** A directory owned by `user` for its sockets; removed when `t` ends. */
export function userDir(t: Cleanup, user: AccountName): string {
  const dir = mkdtempSync(join(tmpdir(), `conductor-${user}-`));
  if (isRoot) {
    const a = account(user);
    chownSync(dir, a.uid, a.gid);
  }
  chmodSync(dir, 0o700);
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts `conductor` against `gw` through `sshd`. */
export function startConductor(t: Cleanup, sshd: TestSshd, gw: TestGateway, options: ConductorStart = {}): TestConductor {
  const user = options.user ?? "alice";
  const dir = userDir(t, user);
  const appSocket = options.appSocket ?? join(dir, "app.sock");
  const destination = `${sshd.loginName(user)}@127.0.0.1:${sshd.port}${gw.controlPath}`;
  const args = [...(options.program === undefined ? [bin("conductor")] : []), ...(options.args ?? [])];
  if (options.key !== undefined) args.push("-k", options.key);
  for (const o of options.sshOptions ?? sshd.clientOptions(user)) args.push("-o", o);
  args.push(destination, appSocket, "--", ...(options.command ?? [process.execPath, fixture("serve")]));
  // Each run its own state directory: test files run at once as the same users.
  const stateEnv = { XDG_STATE_HOME: join(dir, "state") };
  const env: NodeJS.ProcessEnv = { ...stateEnv, ...options.env };
  if (options.token !== undefined) env.CONDUCTOR_TOKEN = options.token;
  const proc = startProcess(t, options.program ?? process.execPath, args, { user, env, cwd: dir });
  return {
    process: proc,
    appSocket,
    dir,
    stateEnv,
    events: () => proc.json(),
    live: async (n = 1, timeoutMs = 120_000) => {
      let lives = 0;
      const event = await proc.waitForJson((e) => e.state === "failed" || (e.state === "live" && ++lives === n), timeoutMs)
        .catch((err: Error) => { throw new Error(`no live event #${n}: ${err.message}`); });
      if (event.state === "failed") throw new Error(`conductor failed: ${event.reason}\n${proc.stderr.join("\n")}`);
      return event.config as { auth: string; key: string; urls: string[]; name?: string; fingerprint?: string };
    },
  };
}

/** What a finished `conductor` command printed. */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `conductor ARGS` as `user` (a verb such as show or list) and waits for it. */
export async function conductorCommand(t: Cleanup, user: AccountName, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CommandResult> {
  const proc = startProcess(t, process.execPath, [bin("conductor"), ...args], { user, env });
  const { code } = await proc.exited;
  await proc.closed;
  return { code, stdout: proc.stdout.join("\n"), stderr: proc.stderr.join("\n") };
}
