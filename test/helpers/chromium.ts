/**
 * Debian's Chromium, headless, driven over the DevTools protocol on a pipe
 * (--remote-debugging-pipe: commands on fd 3, answers on fd 4, NUL-separated
 * JSON), with an empty profile of its own and no network but loopback.
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { defer, type Cleanup } from "./cleanup.ts";

/** A running browser. */
export interface Browser {
  /** Sends a DevTools command (to a page session when `sessionId` is given) and resolves with its result. */
  send(method: string, params?: Record<string, unknown>, sessionId?: string): Promise<Record<string, unknown>>;
  /** Resolves with the params of the next event `method` (of `sessionId`). */
  event(method: string, sessionId?: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Opens a page and attaches to it; resolves with its session id. */
  newPage(): Promise<string>;
  /** Quits the browser and removes its profile. */
  close(): Promise<void>;
}

/** Options of {@link startChromium}. */
export interface ChromiumOptions {
  /** base64 SHA-256 of the SubjectPublicKeyInfo of server certificates to accept (test certificates). */
  trustSpki?: string[];
}

/** Starts headless Chromium with an empty profile; closed when `t` ends. */
export async function startChromium(t: Cleanup, path: string, options: ChromiumOptions = {}): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "conductor-chromium-"));
  const args = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
    "--disable-dev-shm-usage", "--mute-audio",
    // No network but loopback: every name but *.localhost fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE *.localhost , EXCLUDE localhost",
    `--user-data-dir=${profile}`,
    "--remote-debugging-pipe",
    ...(options.trustSpki?.length ? [`--ignore-certificate-errors-spki-list=${options.trustSpki.join(",")}`] : []),
    "about:blank",
  ];
  // Its own process group: the renderer and helper processes go with it.
  const child: ChildProcess = spawn(path, args, { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"], detached: true });
  const commands = child.stdio[3] as Writable;
  const answers = child.stdio[4] as Readable;
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => { if (stderr.length < 20_000) stderr += c.toString(); });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  const listeners: Array<{ method: string; sessionId?: string; resolve: (p: Record<string, unknown>) => void }> = [];
  let buffered = "";
  answers.setEncoding("utf8");
  answers.on("data", (chunk: string) => {
    buffered += chunk;
    let end: number;
    while ((end = buffered.indexOf("\0")) !== -1) {
      const message = JSON.parse(buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
      if (typeof message.id === "number") {
        const p = pending.get(message.id);
        pending.delete(message.id);
        if (message.error) p?.reject(new Error(`${message.error.message} (${JSON.stringify(message.error.data ?? "")})`));
        else p?.resolve(message.result ?? {});
      } else if (typeof message.method === "string") {
        const i = listeners.findIndex((l) => l.method === message.method && (l.sessionId === undefined || l.sessionId === message.sessionId));
        if (i !== -1) listeners.splice(i, 1)[0].resolve(message.params ?? {});
      }
    }
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const browser: Browser = {
    send(method, params = {}, sessionId) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        commands.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + "\0");
      });
    },
    event(method, sessionId, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const entry = { method, sessionId, resolve: (p: Record<string, unknown>) => { clearTimeout(timer); resolve(p); } };
        const timer = setTimeout(() => {
          listeners.splice(listeners.indexOf(entry), 1);
          reject(new Error(`no ${method} within ${timeoutMs} ms; chromium said:\n${stderr.slice(-2000)}`));
        }, timeoutMs);
        listeners.push(entry);
      });
    },
    async newPage() {
      const { targetId } = await browser.send("Target.createTarget", { url: "about:blank" });
      const { sessionId } = await browser.send("Target.attachToTarget", { targetId, flatten: true });
      return sessionId as string;
    },
    async close() {
      if (child.exitCode === null) {
        await Promise.race([browser.send("Browser.close").catch(() => {}), new Promise((r) => setTimeout(r, 3000))]);
      }
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch { /* the group is gone */ }
      await exited;
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    },
  };
  defer(t, () => browser.close());
  await browser.send("Browser.getVersion");
  return browser;
}
