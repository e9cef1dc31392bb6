/**
 * A private nginx for tests and benchmarks: its own prefix, configuration,
 * pid file and logs in a temporary directory, started in the foreground and
 * stopped with the test. The system's nginx configuration is not read.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defer, type Cleanup } from "./cleanup.ts";
import { currentAccount } from "./accounts.ts";
import { isRoot, repoRoot } from "./env.ts";
import { startProcess, type TestProcess } from "./process.ts";
import { freePort } from "./sshd.ts";

/** Where Debian installs nginx. */
export const NGINX = "/usr/sbin/nginx";

/** Reason to skip, or false when nginx can run here. */
export const nginxMissing: string | false = existsSync(NGINX) ? false : "nginx is not installed (apt-get install nginx-light)";

/** The stream module of Debian's libnginx-mod-stream, when installed. */
export const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

/** A running private nginx. */
export interface TestNginx {
  /** The current master process. */
  readonly process: TestProcess;
  prefix: string;
  stop(): Promise<void>;
  /** Starts it again with the same configuration (after a stop or a crash). */
  restart(): Promise<void>;
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
  let proc = await launch(t, prefix, file);
  return {
    get process() { return proc; },
    prefix,
    stop: () => proc.stop(),
    restart: async () => {
      await proc.stop();
      proc = await launch(t, prefix, file);
    },
  };
}

/** Runs nginx in the foreground and waits for its pid file. */
async function launch(t: Cleanup, prefix: string, file: string): Promise<TestProcess> {
  const pidFile = join(prefix, "nginx.pid");
  rmSync(pidFile, { force: true });
  const proc = startProcess(t, NGINX, ["-p", prefix, "-c", file]);
  const deadline = Date.now() + 60_000;
  while (!existsSync(pidFile)) {
    if (proc.child.exitCode !== null || Date.now() > deadline) throw new Error(`nginx did not start:\n${proc.stderr.join("\n")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return proc;
}

/** A running nginx in front of conductor-server, with the site configuration of contrib/. */
export interface FrontNginx extends TestNginx {
  /** Its TLS port on 127.0.0.1. */
  port: number;
}

/**
 * Starts nginx with contrib/nginx-conductor.conf as its site, adapted to the
 * test: TLS on a free port of 127.0.0.1 with `cert`, server names
 * `*.apps.localhost`, the gateway at `sock`, workers as `user` (as root;
 * default root).
 */
export async function startFrontNginx(t: Cleanup, sock: string, cert: { cert: string; key: string }, user?: string): Promise<FrontNginx> {
  const site = readFileSync(join(repoRoot, "contrib", "nginx-conductor.conf"), "utf8")
    .replace("listen 443 ssl http2;", "listen 127.0.0.1:__PORT__ ssl;")
    .replace("listen [::]:443 ssl http2;", "")
    .replace("server_name *.apps.example.org;", "server_name *.apps.localhost;")
    .replace("/etc/ssl/apps.example.org/fullchain.pem", cert.cert)
    .replace("/etc/ssl/apps.example.org/privkey.pem", cert.key)
    .replace("unix:/run/conductor-http.sock", `unix:${sock}`);
  // A free port can be taken by another test before nginx binds it: then try another.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    try {
      const nginx = await startNginx(t, `http {\n${httpCommon()}\n${site.replace("__PORT__", String(port))}\n}`, { user });
      return Object.assign(nginx, { port });
    } catch (err) {
      if (attempt >= 4) throw err;
    }
  }
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
