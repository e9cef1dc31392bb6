/**
 * User accounts and groups through NSS (`getent passwd`, `getent group`),
 * never by parsing /etc/passwd, so LDAP and SSSD entries resolve as the
 * system resolves them.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { ConductorError } from "./errors.ts";

/** One passwd entry. */
export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** User names the gateway publishes under: lowercase, fit for a host name label and a file name. */
export const USER_NAME_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

const CACHE_MS = 60_000;
const cache = new Map<string, { account: Account | null; expires: number }>();

/**
 * Looks up an account by uid or name through `getent passwd`; results are cached for a minute.
 * Throws `CONDUCTOR_ERR_USER_UNKNOWN` when NSS has no such entry.
 */
export async function lookupAccount(who: number | string): Promise<Account> {
  const account = await findAccount(who);
  if (account === null) {
    throw new ConductorError("CONDUCTOR_ERR_USER_UNKNOWN",
      `Cannot resolve user ${who}: getent passwd knows no such ${typeof who === "number" ? "uid" : "name"}; check NSS (nsswitch.conf, sssd)`);
  }
  return account;
}

/** Like {@link lookupAccount}, but null when NSS has no such entry (absence is cached too). */
export async function findAccount(who: number | string): Promise<Account | null> {
  const key = String(who);
  const hit = cache.get(key);
  if (hit && hit.expires > Date.now()) return hit.account;
  const line = await getent("passwd", key);
  if (line === null) {
    cache.set(key, { account: null, expires: Date.now() + CACHE_MS });
    return null;
  }
  const account = parsePasswdLine(line);
  const expires = Date.now() + CACHE_MS;
  cache.set(key, { account, expires });
  cache.set(String(account.uid), { account, expires });
  cache.set(account.name, { account, expires });
  return account;
}

/** Parses one passwd(5) line, `name:x:uid:gid:gecos:home:shell`. */
export function parsePasswdLine(line: string): Account {
  const f = line.split(":");
  if (f.length < 7 || !/^\d+$/.test(f[2]) || !/^\d+$/.test(f[3])) {
    throw new ConductorError("CONDUCTOR_ERR_USER_UNKNOWN", `Cannot parse passwd entry: ${JSON.stringify(line)}`);
  }
  return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5], shell: f[6] };
}

/**
 * The gid of a group given by name or number, through `getent group`.
 * Throws `CONDUCTOR_ERR_USER_UNKNOWN` when NSS has no such group.
 */
export async function lookupGroupId(group: string): Promise<number> {
  const line = await getent("group", group);
  const gid = line?.split(":")[2];
  if (gid === undefined || !/^\d+$/.test(gid)) {
    throw new ConductorError("CONDUCTOR_ERR_USER_UNKNOWN", `Cannot resolve group ${group}: getent group knows no such group; create it or check NSS`);
  }
  return Number(gid);
}

/** The name of group `gid` (through NSS); its number as text when it has none. */
export async function lookupGroupName(gid: number): Promise<string> {
  return (await getent("group", String(gid)))?.split(":")[0] || String(gid);
}

function getent(database: "passwd" | "group", key: string): Promise<string | null> {
  return new Promise((resolve, reject) => {
    execFile("getent", [database, key], { timeout: 10_000 }, (err, stdout) => {
      if (err) {
        // getent exits 2 when the key is not found.
        if ((err as { code?: unknown }).code === 2) resolve(null);
        else reject(new ConductorError("CONDUCTOR_ERR_USER_UNKNOWN", `Cannot run getent ${database} ${key}: ${err.message}`, { cause: err }));
        return;
      }
      const line = stdout.split("\n")[0];
      resolve(line ? line : null);
    });
  });
}
