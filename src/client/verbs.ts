/**
 * `conductor show`, `verify`, `list` and `stop`: the registry's commands on
 * the user's own live services, from the records in the user's private
 * state directory (and, for `list --gateway`, from the gateway over SSH).
 *
 * @module
 */
import { messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { authLink, findService, globRe, isLocal, keyMatches, listServices, registryDir, type ServiceRecord } from "../registry/services.ts";
import { processAlive } from "../state/lock.ts";
import { runtimeDir } from "../state/private_dir.ts";
import { clientSsh, type SshTarget } from "../ssh/master.ts";
import { querySession } from "./session.ts";

/** Where a verb writes, and what it knows of its environment. */
export interface VerbContext {
  env: NodeJS.ProcessEnv;
  out: (text: string) => void;
  err: (text: string) => void;
  logger: Logger;
}

/** `conductor show NAME`: URL, auth link and token; exit 1 when there is no such live service. */
export async function showService(name: string, json: boolean, ctx: VerbContext): Promise<number> {
  const record = await findService(registryDir(ctx.env), name);
  if (record === null) return noSuchService(name, ctx);
  if (json) {
    ctx.out(JSON.stringify({ ...record, url: urlOf(record), ...(record.kind === "tcp" ? {} : { authLink: authLink(record) }) }, null, 2) + "\n");
    return 0;
  }
  const lines: Array<[string, string]> = record.kind === "tcp" ? [["name", record.name], ["address", urlOf(record)]] : [
    ["name", record.name],
    ["url", urlOf(record)],
    ["auth link", authLink(record)],
    ["token", record.token],
  ];
  lines.push(
    ["gateway", record.gateway],
    ["socket", record.socket],
    ["host", record.host],
    ["pid", `${record.pid}, live since ${record.started}`],
  );
  if (record.tls) lines.push(["tls", `SHA-256 ${record.tls.fingerprint}`], ["certificate", record.tls.cert], ["key", record.tls.key]);
  ctx.out(lines.map(([k, v]) => `${k.padEnd(12)}${v}\n`).join(""));
  return 0;
}

/** `conductor verify NAME KEY`: exit 0 when KEY is the service's magic key, 1 otherwise. */
export async function verifyService(name: string, key: string, ctx: VerbContext): Promise<number> {
  const record = await findService(registryDir(ctx.env), name);
  if (record === null) return noSuchService(name, ctx);
  return keyMatches(record, key) ? 0 : 1;
}

/** `conductor list [PATTERN]`: the user's live services, here or as `gateway` publishes them. */
export async function listCommand(pattern: string, json: boolean, gateway: SshTarget | null, ctx: VerbContext): Promise<number> {
  if (gateway !== null) return listOnGateway(pattern, json, gateway, ctx);
  const records = await listServices(registryDir(ctx.env), pattern);
  if (json) {
    ctx.out(JSON.stringify(records.map(({ token: _token, ...r }) => ({ ...r, url: urlOf(r as ServiceRecord) })), null, 2) + "\n");
    return 0;
  }
  const rows = records.map((r) => [r.name, r.kind, urlOf(r), r.gateway, r.host, String(r.pid), age(r.started)]);
  ctx.out(table(["NAME", "KIND", "URL", "GATEWAY", "HOST", "PID", "AGE"], rows));
  return 0;
}

async function listOnGateway(pattern: string, json: boolean, gateway: SshTarget, ctx: VerbContext): Promise<number> {
  const session = querySession({ ssh: clientSsh(ctx.env, gateway), runtimeDir: await runtimeDir(ctx.env), events: () => {}, logger: ctx.logger });
  try {
    const match = globRe(pattern);
    const services = (await session.query()).filter((s) => match.test(s.name));
    if (json) {
      ctx.out(JSON.stringify(services, null, 2) + "\n");
      return 0;
    }
    ctx.out(table(["NAME", "KIND", "URL", "AGE", "IDLE"], services.map((s) =>
      [s.name, s.kind, urlOf(s), age(s.created), s.idle === undefined ? "-" : seconds(s.idle)])));
    return 0;
  } catch (err) {
    ctx.err(`conductor: ${messageOf(err)}\n`);
    return 1;
  } finally {
    await session.close();
  }
}

/** `conductor stop NAME`: asks the service's conductor to stop (SIGTERM) and waits until it has. */
export async function stopService(name: string, ctx: VerbContext): Promise<number> {
  const record = await findService(registryDir(ctx.env), name);
  if (record === null) return noSuchService(name, ctx);
  if (!isLocal(record)) {
    ctx.err(`conductor: service '${name}' runs on ${record.host}; stop it there: ssh ${record.host} conductor stop ${name}\n`);
    return 1;
  }
  try {
    process.kill(record.pid, "SIGTERM");
  } catch (err) {
    ctx.err(`conductor: Cannot stop service '${name}' (pid ${record.pid}): ${messageOf(err)}\n`);
    return 1;
  }
  const deadline = Date.now() + 30_000;
  while (processAlive(record.pid, record.pidStarted)) {
    if (Date.now() > deadline) {
      ctx.err(`conductor: service '${name}' (pid ${record.pid}) did not stop within 30 s; kill it with 'kill ${record.pid}'\n`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  ctx.out(`stopped ${name} (pid ${record.pid})\n`);
  return 0;
}

function noSuchService(name: string, ctx: VerbContext): number {
  ctx.err(`conductor: no live service named '${name}'; 'conductor list' shows yours\n`);
  return 1;
}

/** Where a service is reached: its URL, or a TCP stream's HOST:PORT. */
function urlOf(record: { kind: string; scheme: string; urls: string[]; address?: string }): string {
  return record.kind === "tcp" ? record.address ?? "-" : `${record.scheme}://${record.urls[0]}/`;
}

function age(iso: string): string {
  return seconds(Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000)));
}

/** `s` seconds, written short: 42s, 5m07s, 3h02m, 2d04h. */
function seconds(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor(s / 3600) % 24).padStart(2, "0")}h`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] + 2))).join("") + "\n";
  return line(header) + rows.map(line).join("");
}
