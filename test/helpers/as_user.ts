/**
 * Another local user at work on the gateway host: a snippet of JavaScript
 * run as that user, and snippets that report whether an operation the user
 * tries succeeds.
 *
 * @module
 */
import type { AccountName } from "./accounts.ts";
import type { Cleanup } from "./cleanup.ts";
import { startProcess } from "./process.ts";

/** Runs a snippet of JavaScript (an ES module; `args` in process.argv from 1) as `user`; resolves with what it printed. */
export async function runAs(t: Cleanup, user: AccountName, code: string, ...args: string[]): Promise<string> {
  const proc = startProcess(t, process.execPath, ["--input-type=module", "-e", code, ...args], { user });
  await proc.exited;
  return proc.stdout.join("\n").trim();
}

/** A snippet that runs `body` (with `fs`, `net` and the arguments `a`, `b`) and prints the error code of what failed, or "ok". */
export function attempt(body: string): string {
  return `
import * as fs from "node:fs"; import * as net from "node:net";
const [a, b] = process.argv.slice(1);
try { await (async () => { ${body} })(); console.log("ok"); } catch (e) { console.log(e.code ?? e.message); }`;
}
