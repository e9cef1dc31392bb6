/**
 * Test accounts: `conductor` (the gateway's user and group) and two ordinary
 * users, `alice` and `bob`, created when the suite runs as root.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { isRoot } from "./env.ts";

/** A local account. */
export interface TestAccount {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Names of the accounts the suite uses ("jean-luc" and "luc" test host names that read two ways; "www-data" is nginx's, as on Debian). */
export type AccountName = "conductor" | "alice" | "bob" | "jean-luc" | "luc" | "www-data";

const cache = new Map<string, TestAccount>();

/** The account `name`, created first (as root) when missing. */
export function account(name: AccountName): TestAccount {
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  let entry = getent(name);
  if (entry === null) {
    if (!isRoot) throw new Error(`Cannot create test account ${name}: not root`);
    create(name);
    entry = getent(name);
    if (entry === null) throw new Error(`Cannot create test account ${name}`);
  }
  cache.set(name, entry);
  return entry;
}

/** The account the current process runs as. */
export function currentAccount(): TestAccount {
  const uid = process.getuid!();
  const entry = getent(String(uid));
  if (entry === null) throw new Error(`uid ${uid} has no passwd entry`);
  return entry;
}

function getent(key: string): TestAccount | null {
  try {
    const line = execFileSync("getent", ["passwd", key], { encoding: "utf8" }).split("\n")[0];
    const f = line.split(":");
    return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
  } catch {
    return null;
  }
}

function create(name: AccountName): void {
  const args = name === "conductor"
    ? ["--system", "--user-group", "--home-dir", "/nonexistent", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    : ["--user-group", "--create-home", "--shell", "/bin/sh", "--password", "*", name];
  // Test files run in parallel: another may be creating the same account.
  for (let attempt = 0; attempt < 20; attempt++) {
    if (getent(name) !== null) return;
    try {
      execFileSync("useradd", args, { stdio: "pipe" });
      return;
    } catch {
      execFileSync("sleep", ["0.2"]);
    }
  }
}
