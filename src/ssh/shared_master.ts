/**
 * Master connections shared by every `conductor` run of one user to the same
 * gateway: the first run starts the master, later ones reuse it, the last one
 * out stops it. Users of a master are pid files next to its control socket;
 * a lock keeps starting and stopping from racing.
 *
 * Should every run die without cleaning up, the master's `ControlPersist`
 * time ends it once its last channel closes.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { isErrno } from "../lib/errors.ts";
import { withLock, processAlive } from "../state/lock.ts";
import { SshMaster, type SshSettings } from "./master.ts";

/** A master this run may use until it calls `release`. */
export interface MasterLease {
  master: SshMaster;
  /** True when another run had already started the master. */
  reused: boolean;
  /** Stops using the master; stops the master too when no other run uses it. Safe to call twice. */
  release(): Promise<void>;
}

/** Name of the master for these settings: the same gateway, user, port and options share one. */
export function masterName(settings: SshSettings): string {
  const d = settings.destination;
  return createHash("sha256").update(JSON.stringify([settings.ssh, d.user, d.host, d.port, settings.options])).digest("hex").slice(0, 16);
}

/**
 * Takes a lease on the master for `settings`, starting it when none runs
 * (`starting` is called first). `dir` is the user's private runtime directory.
 */
export async function leaseMaster(settings: SshSettings, dir: string, starting?: () => void): Promise<MasterLease> {
  const name = masterName(settings);
  const master = new SshMaster(settings, join(dir, `${name}.ssh`));
  const usersDir = join(dir, `${name}.users`);
  const lockPath = join(dir, `${name}.lock`);
  const me = join(usersDir, String(process.pid));
  const reused = await withLock(lockPath, async () => {
    await fs.mkdir(usersDir, { recursive: true, mode: 0o700 });
    await fs.writeFile(me, "");
    if (await master.check() !== null) return true;
    // A control socket nobody answers on is left over from a crash.
    await fs.rm(master.controlPath, { force: true });
    starting?.();
    try {
      await master.start();
    } catch (err) {
      await fs.rm(me, { force: true });
      // Nobody else uses a master that never started: its directory goes too.
      await fs.rmdir(usersDir).catch(() => {});
      throw err;
    }
    return false;
  }, { timeoutMs: 90_000 });
  let released = false;
  return {
    master,
    reused,
    release: async () => {
      if (released) return;
      released = true;
      await withLock(lockPath, async () => {
        await fs.rm(me, { force: true });
        if ((await liveUsers(usersDir)) > 0) return;
        await master.exit();
        await fs.rm(usersDir, { recursive: true, force: true });
        await fs.rm(master.controlPath, { force: true });
      }, { timeoutMs: 90_000 });
    },
  };
}

/** Counts the runs that still use a master, removing the pid files of dead ones. */
async function liveUsers(usersDir: string): Promise<number> {
  let names: string[];
  try {
    names = await fs.readdir(usersDir);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return 0;
    throw err;
  }
  let live = 0;
  for (const name of names) {
    if (/^[0-9]+$/.test(name) && processAlive(Number(name))) live++;
    else await fs.rm(join(usersDir, name), { force: true });
  }
  return live;
}
