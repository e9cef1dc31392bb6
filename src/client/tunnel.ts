/**
 * `conductor tunnel`: local forwards through the SSH master that `conductor`
 * runs to the same host share, as a portal carries its database connection.
 * Each forward's sides are a UNIX socket path or a port (a local port binds
 * 127.0.0.1 only; a remote port is on the SSH server's localhost). It stays
 * in the foreground, says when each forward is up, and on a signal cancels
 * its forwards and releases the master; it exits non-zero with a reason when
 * the master goes.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { ConductorError, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { processAlive } from "../state/lock.ts";
import { runtimeDir } from "../state/private_dir.ts";
import { connectTimeoutOf, type SshSettings } from "../ssh/master.ts";
import type { ClientEvent } from "./events.ts";
import { leaseMaster, type MasterLease } from "../ssh/shared_master.ts";
import { inspectSocketPath, removeIfStale } from "./socket_owner.ts";

/** One forward, as ssh's -L takes its sides. */
export interface Forward {
  /** `127.0.0.1:PORT` or an absolute socket path. */
  local: string;
  /** `localhost:PORT` (on the SSH server) or an absolute socket path. */
  remote: string;
}

/** Reads `LOCAL:REMOTE`, each a port or a UNIX socket path (relative local paths from `cwd`); throws with the rule. */
export function parseForward(spec: string, cwd: string): Forward {
  const parts = spec.split(":");
  if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
    throw new ConductorError("CONDUCTOR_ERR_USAGE",
      `Cannot read forward '${spec}': write LOCAL:REMOTE, each a port or a UNIX socket path (paths cannot hold ':'), e.g. 8888:/run/user/1000/lab.sock or /tmp/db.sock:5432`);
  }
  const side = (text: string, where: "local" | "remote"): string => {
    if (/^[0-9]+$/.test(text)) {
      const port = Number(text);
      if (port < 1 || port > 65535) throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot read forward '${spec}': port ${text} is not from 1 to 65535`);
      return where === "local" ? `127.0.0.1:${port}` : `localhost:${port}`;
    }
    if (where === "remote" && !isAbsolute(text)) {
      throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot read forward '${spec}': the remote socket path must be absolute`);
    }
    const path = where === "local" ? resolve(cwd, text) : text;
    if (Buffer.byteLength(path) > 107) throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot use socket path ${path}: longer than the 107 bytes a UNIX socket path may have`);
    return path;
  };
  return { local: side(parts[0], "local"), remote: side(parts[1], "remote") };
}

/** What a tunnel reports: ssh starts a connection, a forward is up, or it failed. */
export type TunnelEvent =
  | Extract<ClientEvent, { state: "connecting" }>
  | { state: "forward"; local: string; remote: string }
  | { state: "failed"; reason: string };

/** What a tunnel needs besides its forwards. */
export interface TunnelContext {
  env: NodeJS.ProcessEnv;
  logger: Logger;
  events: (event: TunnelEvent) => void;
  /** Resolves when the tunnel should end (a signal arrived). */
  stopRequested: Promise<string>;
  /** How often the master is checked for life, in ms. Default 1 s. */
  checkEveryMs?: number;
}

/** Opens the forwards through the shared master and holds them; resolves with the exit status (0 stopped, 1 failed). */
export async function runTunnel(ssh: SshSettings, forwards: Forward[], ctx: TunnelContext): Promise<number> {
  let lease: MasterLease;
  try {
    const d = ssh.destination;
    lease = await leaseMaster(ssh, await runtimeDir(ctx.env),
      () => ctx.events({ state: "connecting", user: d.user, host: d.host, port: d.port, timeout: connectTimeoutOf(ssh) }));
  } catch (err) {
    ctx.events({ state: "failed", reason: messageOf(err) });
    return 1;
  }
  const opened: Forward[] = [];
  let status = 0;
  try {
    for (const forward of forwards) {
      await makeWayFor(forward.local);
      await lease.master.forwardLocal(forward.local, forward.remote);
      opened.push(forward);
      ctx.events({ state: "forward", local: forward.local, remote: forward.remote });
    }
    const why = await Promise.race([ctx.stopRequested.then(() => "stopped" as const), masterGone(lease, ctx.checkEveryMs ?? 1000)]);
    if (why === "gone") {
      ctx.events({ state: "failed", reason: `The SSH connection to ${ssh.destination.host} ended, and the forwards with it; run conductor tunnel again` });
      status = 1;
    }
  } catch (err) {
    ctx.events({ state: "failed", reason: messageOf(err) });
    status = 1;
  } finally {
    for (const forward of opened) {
      await lease.master.cancelLocal(forward.local, forward.remote);
      if (forward.local.startsWith("/")) await removeIfStale(forward.local).catch(() => {});
    }
    await lease.release().catch((err) => ctx.logger.warn("cannot release the SSH master", { error: messageOf(err) }));
  }
  return status;
}

/** A local socket nobody listens on is removed; one in use, or anything else at the path, is an error. */
async function makeWayFor(local: string): Promise<void> {
  if (!local.startsWith("/")) return;
  const state = await inspectSocketPath(local);
  if (state.kind === "other") throw new ConductorError("CONDUCTOR_ERR_SOCKET_IN_USE", `Cannot forward ${local}: it is not a socket (it is ${state.what}); choose another path`);
  if (state.kind === "live") throw new ConductorError("CONDUCTOR_ERR_SOCKET_IN_USE", `Cannot forward ${local}: something listens on it already; choose another path`);
  await removeIfStale(local);
}

/** Resolves with "gone" once the master's process is no longer there (checked by its pid, without running ssh). */
async function masterGone(lease: MasterLease, everyMs: number): Promise<"gone"> {
  const pid = await lease.master.check();
  for (;;) {
    await new Promise((r) => setTimeout(r, everyMs));
    if (pid === null || pid === 0) {
      if (await lease.master.check() === null) return "gone";
      continue;
    }
    if (!processAlive(pid)) return "gone";
  }
}
