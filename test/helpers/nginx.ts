/**
 * A private nginx for tests and benchmarks: its own prefix, configuration,
 * pid file and logs in a temporary directory, started in the foreground and
 * stopped with the test. The system's nginx configuration is not read.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defer, type Cleanup } from "./cleanup.ts";
import { currentAccount } from "./accounts.ts";
import { isRoot } from "./env.ts";
import { startProcess, type TestProcess } from "./process.ts";

/** Where Debian installs nginx. */
export const NGINX = "/usr/sbin/nginx";

/** Reason to skip, or false when nginx can run here. */
export const nginxMissing: string | false = existsSync(NGINX) ? false : "nginx is not installed (apt-get install nginx-light)";

/** The stream module of Debian's libnginx-mod-stream, when installed. */
export const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

/** A running private nginx. */
export interface TestNginx {
  process: TestProcess;
  prefix: string;
  stop(): Promise<void>;
}

/**
 * Starts nginx with `body` as the inside of its configuration (http and
 * stream blocks); worker settings, pid and logs are filled in. As root, the
 * workers run as `user` (default: root, so they reach every socket).
 */
export async function startNginx(t: Cleanup, body: string, options: { user?: string; workers?: number; modules?: string[] } = {}): Promise<TestNginx> {
  const prefix = mkdtempSync(join(tmpdir(), "conductor-nginx-"));
  chmodSync(prefix, 0o755);
  defer(t, () => rmSync(prefix, { recursive: true, force: true }));
  for (const d of ["logs", "conf", "tmp"]) mkdirSync(join(prefix, d));
  const config = [
    ...(options.modules ?? []).map((m) => `load_module ${m};`),
    "daemon off;",
    "master_process on;",
    `worker_processes ${options.workers ?? 1};`,
    isRoot ? `user ${options.user ?? currentAccount().name};` : "",
    `pid ${prefix}/nginx.pid;`,
    `error_log ${prefix}/logs/error.log warn;`,
    "events { worker_connections 20000; }",
    body,
    "",
  ].join("\n");
  const file = join(prefix, "conf", "nginx.conf");
  writeFileSync(file, config);
  execFileSync(NGINX, ["-t", "-q", "-p", prefix, "-c", file], { stdio: "pipe" });
  const proc = startProcess(t, NGINX, ["-p", prefix, "-c", file]);
  const deadline = Date.now() + 10_000;
  while (!existsSync(join(prefix, "nginx.pid"))) {
    if (proc.child.exitCode !== null || Date.now() > deadline) throw new Error(`nginx did not start:\n${proc.stderr.join("\n")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { process: proc, prefix, stop: () => proc.stop() };
}

/** The http {} settings every test nginx shares: temp paths in the prefix, no access log. */
export function httpCommon(prefix = "tmp"): string {
  return [
    "access_log off;",
    `client_body_temp_path ${prefix}/body;`,
    `proxy_temp_path ${prefix}/proxy;`,
    `fastcgi_temp_path ${prefix}/fastcgi;`,
    `uwsgi_temp_path ${prefix}/uwsgi;`,
    `scgi_temp_path ${prefix}/scgi;`,
  ].join("\n");
}
