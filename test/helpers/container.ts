/**
 * A Debian 12 system with systemd as PID 1, for tests of what runs under a
 * real service manager: a minimal root file system made by mmdebstrap from
 * Debian's packages (kept between runs in /var/cache, keyed by what it holds),
 * booted by systemd-nspawn on a throwaway overlay of it, without a network of
 * its own (loopback only). The host needs neither systemd as PID 1 nor a
 * system bus: commands enter the container's namespaces with nsenter(1).
 *
 * @module
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { defer, type Cleanup } from "./cleanup.ts";
import { isRoot } from "./env.ts";
import { TestProcess } from "./process.ts";

/** The Debian release the container runs. */
const SUITE = "bookworm";

/** What the container holds: systemd and a user manager, sshd, nginx with streams, Debian's own Node.js, and what the README's installation uses. */
const PACKAGES = [
  "systemd", "systemd-sysv", "dbus", "dbus-user-session", "libpam-systemd", "passwd", "procps",
  "openssh-server", "openssh-client", "nginx-light", "libnginx-mod-stream", "nodejs", "make", "curl",
];

/** Where root file systems are kept between runs. */
const CACHE = "/var/cache/conductor-ci";

const TOOLS = ["/usr/bin/systemd-nspawn", "/usr/bin/mmdebstrap", "/usr/bin/nsenter"];

/** The PATH of commands in the container. */
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Reason the container cannot run here, or false. */
export const containerMissing: string | false = !isRoot ? "needs root (systemd-nspawn, mount)"
  : TOOLS.some((tool) => !existsSync(tool)) ? `missing ${TOOLS.filter((tool) => !existsSync(tool)).join(", ")} (apt-get install systemd-container mmdebstrap util-linux)`
  : debianSources().length === 0 ? `no apt sources for Debian ${SUITE} in /etc/apt to build the container from`
  : false;

/** The output of a command run in the container. */
export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Options of a command in the container. */
export interface InContainer {
  /** Run as this user of the container (setpriv, with its groups and home), else as root. */
  user?: string;
  /** Variables added to a clean environment (PATH, and HOME and USER of `user`). */
  env?: Record<string, string>;
}

/** A booted container. */
export interface Container {
  /** The container's root directory, seen from the host (write files there before they are used). */
  readonly root: string;
  /** Runs a command in the container and fails the test unless it exits 0; returns its stdout. */
  run(command: string[], options?: InContainer): Promise<string>;
  /** Runs a command in the container; returns its status and output, whatever the status. */
  exec(command: string[], options?: InContainer): Promise<Ran>;
  /** Starts a long-running command in the container; stopped when the container stops. */
  start(command: string[], options?: InContainer): TestProcess;
  /** Sends `signal` to a command started with {@link start} (its process in the container, not nsenter). */
  kill(process: TestProcess, signal?: NodeJS.Signals): void;
}

/**
 * The root file system with the packages, made once per package list (about a
 * minute and a half, 320 MiB) and kept in /var/cache/conductor-ci.
 */
export async function debianRootfs(): Promise<string> {
  const sources = debianSources();
  const key = createHash("sha256").update(JSON.stringify({ SUITE, PACKAGES, sources: sources.map((f) => readFileSync(f, "utf8")) })).digest("hex").slice(0, 16);
  const rootfs = join(CACHE, `debian-${SUITE}-${key}`);
  if (existsSync(join(rootfs, "usr", "bin", "node"))) return rootfs;
  mkdirSync(CACHE, { recursive: true, mode: 0o755 });
  for (const name of readdirSync(CACHE)) if (name.startsWith(".build-")) rmSync(join(CACHE, name), { recursive: true, force: true });
  const building = join(CACHE, `.build-${process.pid}`);
  const made = await collect("mmdebstrap", ["--variant=apt", "--mode=root", `--include=${PACKAGES.join(",")}`, SUITE, building, ...sources]);
  assert.equal(made.status, 0, `mmdebstrap could not make the container's root file system:\n${made.stderr.split("\n").slice(-30).join("\n")}`);
  renameSync(building, rootfs);
  return rootfs;
}

/**
 * Boots `rootfs` (left as it is: changes go to an overlay removed with the
 * container) with systemd-nspawn and waits until systemd says the system is
 * up; stopped when `t` ends.
 */
export async function bootContainer(t: Cleanup, rootfs: string): Promise<Container> {
  const dir = mkdtempSync("/var/tmp/conductor-container-");
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, "root");
  for (const sub of ["upper", "work", "root"]) mkdirSync(join(dir, sub));
  const mounted = await collect("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${rootfs},upperdir=${join(dir, "upper")},workdir=${join(dir, "work")}`, root]);
  assert.equal(mounted.status, 0, `cannot mount the container's overlay: ${mounted.stderr}`);
  defer(t, () => collect("umount", ["--lazy", root]));

  const nspawn = new TestProcess(spawn("systemd-nspawn", ["--boot", "--private-network", "--keep-unit", "--register=no", "--quiet", "-D", root],
    { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? PATH, SYSTEMD_LOG_LEVEL: "warning" } }));
  let init = 0;
  const started = new Set<TestProcess>();
  defer(t, async () => {
    // What was started in the container first: the container ends once nsenter, outside it, has reaped its child.
    for (const proc of started) {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) continue;
      container.kill(proc, "SIGKILL");
      proc.child.kill("SIGKILL");
      await proc.exited;
    }
    if (nspawn.child.exitCode !== null || nspawn.child.signalCode !== null) return;
    // The container is thrown away: no halt, its PID 1 killed takes every process of its namespace along.
    process.kill(init, "SIGKILL");
    await nspawn.exited;
  });
  // The container's PID 1: the child of nspawn that is systemd and PID 1 in its own namespace.
  const deadline = Date.now() + 60_000;
  while (init === 0) {
    assert.ok(nspawn.child.exitCode === null, `systemd-nspawn exited (${nspawn.child.exitCode}):\n${nspawn.stderr.join("\n")}`);
    assert.ok(Date.now() < deadline, "systemd-nspawn started no container within a minute");
    init = childrenOf(nspawn.pid).find(isContainerInit) ?? 0;
    if (init === 0) await new Promise((r) => setTimeout(r, 50));
  }

  const command = (argv: string[], options: InContainer = {}): string[] => {
    const home = options.user === undefined ? "/root" : `/home/${options.user}`;
    const env = Object.entries({ PATH, HOME: home, USER: options.user ?? "root", LANG: "C.UTF-8", ...options.env }).map(([k, v]) => `${k}=${v}`);
    const user = options.user === undefined ? [] : ["setpriv", `--reuid=${options.user}`, `--regid=${options.user}`, "--init-groups", "--"];
    return ["-t", String(init), "--all", "--wd", "--", "env", "-i", ...env, ...user, ...argv];
  };
  const container: Container = {
    root,
    exec: (argv, options) => collect("nsenter", command(argv, options)),
    async run(argv, options) {
      const ran = await collect("nsenter", command(argv, options));
      assert.equal(ran.status, 0, `${argv.join(" ")} exited ${ran.status} in the container:\n${ran.stdout}\n${ran.stderr}`);
      return ran.stdout;
    },
    start(argv, options) {
      const proc = new TestProcess(spawn("nsenter", command(argv, options), { stdio: ["ignore", "pipe", "pipe"] }));
      started.add(proc);
      return proc;
    },
    kill(proc, signal = "SIGTERM") {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
      // nsenter forks into the container's PID namespace and waits: its child is the command.
      for (const pid of childrenOf(proc.pid)) process.kill(pid, signal);
    },
  };
  // Up: every unit started (or failed, which the tests see when they use it); systemctl cannot connect until systemd listens.
  for (;;) {
    const up = await container.exec(["systemctl", "is-system-running", "--wait"]);
    if (["running", "degraded"].includes(up.stdout.trim())) return container;
    assert.ok(Date.now() < deadline, `the container did not come up: ${up.stdout}${up.stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** True when process `pid` is systemd running as PID 1 of its own PID namespace. */
function isContainerInit(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return /^Name:\s+systemd$/m.test(status) && /^NSpid:.*\s1$/m.test(status);
  } catch {
    return false;
  }
}

/** Pids of the children of process `pid` (none once it is gone). */
function childrenOf(pid: number): number[] {
  const pids: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      if (text !== "") pids.push(...text.split(" ").map(Number));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  return pids;
}

/** The host's apt source files for Debian's own archive of {@link SUITE} (not third-party repositories). */
function debianSources(): string[] {
  const files = ["/etc/apt/sources.list"];
  const dir = "/etc/apt/sources.list.d";
  if (existsSync(dir)) files.push(...readdirSync(dir).filter((f) => f.endsWith(".list") || f.endsWith(".sources")).map((f) => join(dir, f)));
  return files.filter((f) => existsSync(f) && statSync(f).isFile() && new RegExp(`^[^#]*\\b${SUITE}\\b`, "m").test(readFileSync(f, "utf8")));
}

/** Runs `command` to its end and collects its output. */
function collect(command: string, args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => { stdout += d; });
    child.stderr.setEncoding("utf8").on("data", (d: string) => { stderr += d; });
    child.on("error", (err) => resolve({ status: null, stdout, stderr: stderr + err.message }));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}
