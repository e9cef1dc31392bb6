/**
 * The client-side registry: one JSON file per live service of the user in
 * `$XDG_STATE_HOME/conductor` (default `~/.local/state/conductor`, mode
 * 0700), written when the service goes live and removed when it ends. It is
 * what `conductor show`, `verify`, `list` and `stop` read. Files of runs
 * that died without cleaning up are removed when found.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { promises as fs } from "node:fs";
import { homedir, hostname } from "node:os";
import { join } from "node:path";
import { ConductorError, isErrno, messageOf } from "../lib/errors.ts";
import { NAME_RE } from "../control/protocol.ts";
import { readJson, writeJsonAtomic } from "../state/json_file.ts";
import { processAlive, processStartTime } from "../state/lock.ts";
import { ensurePrivateDir } from "../state/private_dir.ts";

/** A live service as the client records it. */
export interface ServiceRecord {
  name: string;
  /** "http" for a web app the gateway publishes, "tcp" for a TCP stream. */
  kind: "http" | "tcp";
  /** A TCP stream's address, HOST:PORT, and its port. */
  address?: string;
  port?: number;
  /** Route key. */
  key: string;
  /** The gateway argument as given (`[user@]host[:port][/path]`). */
  gateway: string;
  /** Host names the gateway published, and the scheme browsers use. */
  urls: string[];
  scheme: "http" | "https";
  /** The token (magic key) that opens the service. */
  token: string;
  /** The host the service runs on, and its conductor's pid and start time there (to tell a reused pid). */
  host: string;
  pid: number;
  pidStarted: number;
  /** ISO time the service went live first. */
  started: string;
  /** The app's socket. */
  socket: string;
  /** The service's own TLS certificate, when made with --tls. */
  tls?: { cert: string; key: string; fingerprint: string };
}

/** The user's registry directory: `$XDG_STATE_HOME/conductor`, else `~/.local/state/conductor`. */
export function registryDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith("/") ? env.XDG_STATE_HOME : join(env.HOME || homedir(), ".local", "state");
  return join(base, "conductor");
}

/** Checks a service name (the rule of keys); throws `CONDUCTOR_ERR_USAGE` naming it. */
export function checkServiceName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot use service name '${name}': use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'`);
  }
}

function fileOf(dir: string, name: string): string {
  checkServiceName(name);
  return join(dir, `${name}.json`);
}

/** Records a live service (mode 0600, atomically). */
export async function saveService(dir: string, record: ServiceRecord): Promise<void> {
  await ensurePrivateDir(dir);
  await writeJsonAtomic(fileOf(dir, record.name), record, 0o600);
}

/** Removes the record of `name` if it is `pid`'s. */
export async function removeService(dir: string, name: string, pid: number): Promise<void> {
  const record = await readRecord(dir, name);
  if (record !== null && record.pid === pid) await fs.rm(fileOf(dir, name), { force: true });
}

/**
 * The live service `name`, or null. A record of a run on this host whose
 * process is gone is removed on the way; records of other hosts (a shared
 * home directory seen from a login node) are taken as live.
 */
export async function findService(dir: string, name: string): Promise<ServiceRecord | null> {
  const record = await readRecord(dir, name);
  if (record === null) return null;
  if (record.host === hostname() && !processAlive(record.pid, record.pidStarted)) {
    await fs.rm(fileOf(dir, name), { force: true });
    return null;
  }
  return record;
}

/** True when the record's conductor runs on this host (it can be signalled from here). */
export function isLocal(record: ServiceRecord): boolean {
  return record.host === hostname();
}

/** The user's live services whose name matches `pattern` (`*` and `?` wildcards), by name. */
export async function listServices(dir: string, pattern = "*"): Promise<ServiceRecord[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return [];
    throw new ConductorError("CONDUCTOR_ERR_STATE", `Cannot read ${dir}: ${messageOf(err)}`, { cause: err });
  }
  const match = globRe(pattern);
  const out: ServiceRecord[] = [];
  for (const file of names.sort()) {
    const m = /^(.+)\.json$/.exec(file);
    if (m === null || !NAME_RE.test(m[1]) || !match.test(m[1])) continue;
    const record = await findService(dir, m[1]);
    if (record !== null) out.push(record);
  }
  return out;
}

/** True when `key` is the service's magic key (its token); constant time. */
export function keyMatches(record: ServiceRecord, key: string): boolean {
  const a = createHash("sha256").update(record.token).digest();
  const b = createHash("sha256").update(key).digest();
  return timingSafeEqual(a, b);
}

/** The URL a browser opens first, which sets the service's cookie. */
export function authLink(record: ServiceRecord): string {
  return `${record.scheme}://${record.urls[0]}/_conductor/auth/${record.token}`;
}

/** This host, and the pid and start time of this process, for records. */
export function selfPid(): { host: string; pid: number; pidStarted: number } {
  return { host: hostname(), pid: process.pid, pidStarted: processStartTime(process.pid) };
}

async function readRecord(dir: string, name: string): Promise<ServiceRecord | null> {
  try {
    const value = await readJson(fileOf(dir, name)) as ServiceRecord | undefined;
    return value !== undefined && typeof value.pid === "number" && typeof value.token === "string" && typeof value.host === "string" ? value : null;
  } catch {
    return null;
  }
}

/** A regular expression for a name pattern with `*` and `?` wildcards. */
export function globRe(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}
