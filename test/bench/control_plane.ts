/**
 * Control-plane rows of the benchmark: time from starting `conductor` to its
 * `live` event, with the SSH master already up (another run holds it) and
 * with a fresh one.
 *
 * @module
 */
import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import type { Cleanup } from "../helpers/cleanup.ts";
import { currentAccount } from "../helpers/accounts.ts";
import { bin, fixture } from "../helpers/install.ts";
import { startProcess } from "../helpers/process.ts";
import { startChain, type Chain } from "./chain.ts";
import { fmt, median, type Row } from "./main.ts";

/** Milliseconds from starting a conductor run to its `live` event; `extraOptions` choose another master. */
async function timeToLive(cleanup: Cleanup, chain: Chain, key: string, extraOptions: string[]): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), "conductor-bench-cp-"));
  const args = [bin("conductor"), "-k", key];
  for (const o of [...chain.sshd.clientOptions(null), ...extraOptions]) args.push("-o", o);
  args.push(`${currentAccount().name}@127.0.0.1:${chain.sshdPort}${join(chain.runtimeDir, "client")}`, join(work, "app.sock"), "--", process.execPath, fixture("serve"));
  const started = process.hrtime.bigint();
  const client = startProcess(cleanup, process.execPath, args, { env: { XDG_STATE_HOME: join(work, "state") } });
  await client.waitForJson((e) => e.state === "live", 30_000);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  await client.stop();
  rmSync(work, { recursive: true, force: true });
  return ms;
}

/** Rows 8a: start to live with a warm and a cold SSH master. */
export async function controlPlaneRows(cleanup: Cleanup, existing: Chain | null, rounds: number): Promise<Row[]> {
  const chain = existing ?? await startChain(cleanup);
  const warm: number[] = [];
  const cold: number[] = [];
  for (let i = 0; i < Math.max(rounds, 3); i++) {
    warm.push(await timeToLive(cleanup, chain, `warm${i}`, []));
    // Another option set gets a master of its own: a cold start each time.
    cold.push(await timeToLive(cleanup, chain, `cold${i}`, [`ConnectTimeout=${30 + i}`]));
  }
  const w = median(warm);
  const c = median(cold);
  return [{
    measure: "8a. conductor start to live (ms), warm SSH master vs a new one",
    conductor: fmt(w, 0),
    reference: `${fmt(c, 0)} (cold master)`,
    ratio: (w / c).toFixed(2),
    target: "warm < cold",
  }];
}
