/**
 * The benchmark's setup on loopback: a private sshd, conductor-server, and
 * conductor running the test app, so that requests cross the real SSH
 * tunnel; plus the forwarded socket's path for references that use it too.
 *
 * @module
 */
import { join } from "node:path";
import { defer, type Cleanup } from "../helpers/cleanup.ts";
import { currentAccount } from "../helpers/accounts.ts";
import { makeRuntimeDir } from "../helpers/gateway.ts";
import { bin, fixture } from "../helpers/install.ts";
import { startProcess, type TestProcess } from "../helpers/process.ts";
import { startSshd, type TestSshd } from "../helpers/sshd.ts";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";

/** A running chain. */
export interface Chain {
  sshd: TestSshd;
  gateway: TestProcess;
  client: TestProcess;
  port: number;
  /** Host header of the route ("" for a TCP stream). */
  host: string;
  /** The config of the client's "live" event. */
  live: Record<string, unknown>;
  cookie: string;
  /** The app's own socket on the "compute node". */
  appSocket: string;
  /** The socket sshd forwards on the gateway side (what the gateway connects to). */
  forwardedSocket: string;
  runtimeDir: string;
  sshdPort: number;
}

/** Options of {@link startChain}. */
export interface ChainOptions {
  /** Extra conductor-server arguments (TLS files, limits). */
  gatewayArgs?: string[];
  /** Node options of the gateway, e.g. `--cpu-prof`. */
  gatewayNodeArgs?: string[];
  /** Extra conductor arguments (e.g. `--tcp`). */
  clientArgs?: string[];
  /** The app; default the test app. */
  command?: string[];
}

/** Starts sshd, the gateway and a client with the test app; everything runs as the current user. */
export async function startChain(t: Cleanup, options: ChainOptions = {}): Promise<Chain> {
  const sshd = await startSshd(t, { users: "current" });
  const runtimeDir = makeRuntimeDir(t);
  // Streams only for the rows that measure them (with their own ports); their nginx outlives the gateway, so it is stopped at the end.
  const streams = options.gatewayArgs?.includes("--port-range") ?? false;
  const serverArgs = ["-r", runtimeDir, "--state-dir", join(runtimeDir, "state"), ...(streams ? [] : ["--no-streams"])];
  if (streams) defer(t, () => { spawnSync(process.execPath, [bin("conductor-server"), ...serverArgs, "--stop-streams"], { stdio: "ignore" }); });
  const gateway = startProcess(t, process.execPath, [...(options.gatewayNodeArgs ?? []), bin("conductor-server"), ...serverArgs, "-p", "0", "-b", "127.0.0.1", ...(options.gatewayArgs ?? [])]);
  const ready = await gateway.waitForJson((l) => l.msg === "gateway listening", 15_000, "stderr");
  const work = mkdtempSync(join(tmpdir(), "conductor-bench-"));
  defer(t, () => rmSync(work, { recursive: true, force: true }));
  const appSocket = join(work, "app.sock");
  const me = currentAccount().name;
  const args = [bin("conductor"), "-k", "bench", ...(options.clientArgs ?? [])];
  for (const o of sshd.clientOptions(null)) args.push("-o", o);
  args.push(`${me}@127.0.0.1:${sshd.port}${join(runtimeDir, "client")}`, appSocket, "--", ...(options.command ?? [process.execPath, fixture("serve")]));
  // Its own state directory: the user's real one stays untouched, and chains run side by side under one name.
  const client = startProcess(t, process.execPath, args, { env: { CONDUCTOR_TOKEN: "benchmark-token-0", XDG_STATE_HOME: join(work, "state") } });
  const live = await client.waitForJson((e) => e.state === "live", 30_000);
  const banner = client.json().find((e) => e.state === "controlConnect")!.banner as { directory: string };
  return {
    sshd,
    gateway,
    client,
    port: ready.port as number,
    host: (live.config as { urls: string[] }).urls[0] ?? "",
    live: live.config as Record<string, unknown>,
    cookie: "authorization=benchmark-token-0",
    appSocket,
    forwardedSocket: join(banner.directory, "socket"),
    runtimeDir,
    sshdPort: sshd.port,
  };
}
