/**
 * A private sshd on a loopback port for end-to-end tests: throwaway host and
 * user keys, its own config, pid file and authorized keys; the system's ssh
 * configuration is not touched. As root it lets the test users log in; as
 * another user it can only let that user in.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defer, type Cleanup } from "./cleanup.ts";
import { account, currentAccount, type AccountName } from "./accounts.ts";
import { isRoot } from "./env.ts";
import { startProcess, type TestProcess } from "./process.ts";

/** Where sshd is installed on Debian. */
export const SSHD = "/usr/sbin/sshd";

/** Reason to skip ssh tests, or false when sshd can run here. */
export const sshdMissing: string | false = existsSync(SSHD) ? false : "sshd is not installed (apt-get install openssh-server)";

/** A running private sshd and what a client needs to log in to it. */
export interface TestSshd {
  port: number;
  process: TestProcess;
  /** `-o` options a client passes (identity, known hosts, strict checking) for `user`. */
  clientOptions(user: AccountName | null): string[];
  /** The login name of `user` (the suite's own user when not root). */
  loginName(user: AccountName | null): string;
  /** Stops sshd (SIGTERM) and waits; existing sessions end with it. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same keys. */
  restart(): Promise<void>;
}

/** Options of {@link startSshd}. */
export interface SshdOptions {
  /**
   * Who may log in: "test" (alice and bob when root, else the current user)
   * or "current" (only whoever runs this, root included: for the demo).
   */
  users?: "test" | "current";
  /** More sshd_config lines. */
  config?: string[];
}

/** Starts a private sshd on 127.0.0.1 and waits until it accepts connections. */
export async function startSshd(t: Cleanup, options: SshdOptions = {}): Promise<TestSshd> {
  const onlyCurrent = options.users === "current" || !isRoot;
  const dir = mkdtempSync(join(tmpdir(), "conductor-sshd-"));
  chmodSync(dir, 0o755);
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const hostKey = join(dir, "host_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  const keysDir = join(dir, "authorized_keys");
  mkdirSync(keysDir, { mode: 0o755 });
  const knownHosts = join(dir, "known_hosts");

  // One key per user, readable only by that user (ssh refuses keys others can read).
  const identities = new Map<string, string>();
  const users: Array<AccountName | null> = onlyCurrent ? [null] : ["alice", "bob"];
  for (const user of users) {
    const acct = user === null ? currentAccount() : account(user);
    const keyDir = join(dir, `id-${acct.name}`);
    mkdirSync(keyDir, { mode: 0o700 });
    const key = join(keyDir, "id_ed25519");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    writeFileSync(join(keysDir, acct.name), readFileSync(key + ".pub"));
    chmodSync(join(keysDir, acct.name), 0o644);
    if (isRoot && !onlyCurrent) {
      chownSync(keyDir, acct.uid, acct.gid);
      chownSync(key, acct.uid, acct.gid);
    }
    identities.set(acct.name, key);
  }

  const config = join(dir, "sshd_config");
  const configure = (port: number): void => {
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${readFileSync(hostKey + ".pub", "utf8").split(" ").slice(0, 2).join(" ")}\n`);
    chmodSync(knownHosts, 0o644);
    writeFileSync(config, [
    // sshd takes the first value it reads of each keyword: the caller's lines come first and win.
    ...(options.config ?? []),
    `Port ${port}`,
    "ListenAddress 127.0.0.1",
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${keysDir}/%u`,
    "AuthenticationMethods publickey",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    "StrictModes no",
    `PermitRootLogin ${onlyCurrent && isRoot ? "prohibit-password" : "no"}`,
    "AllowStreamLocalForwarding yes",
    // OpenSSH checks socket (streamlocal) forwards against AllowTcpForwarding as well: it must stay "yes".
    "AllowTcpForwarding yes",
    "X11Forwarding no",
    "PrintMotd no",
    "LogLevel VERBOSE",
    "MaxSessions 100",
    "MaxStartups 100:30:200",
    "",
    ].join("\n"));
  };
  if (isRoot) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });

  // A free port can be taken by another test before sshd binds it: then try another.
  let port = 0;
  let proc: TestProcess | null = null;
  for (let attempt = 0; proc === null; attempt++) {
    port = await freePort();
    configure(port);
    try {
      proc = await launch(t, config, port);
    } catch (err) {
      if (attempt >= 4 || !/Address already in use/.test((err as Error).message)) throw err;
    }
  }
  const loginName = (user: AccountName | null): string => (user === null || onlyCurrent ? currentAccount().name : account(user).name);
  return {
    port,
    get process() { return proc!; },
    loginName,
    clientOptions: (user) => [
      `IdentityFile=${identities.get(loginName(user))}`,
      "IdentitiesOnly=yes",
      `UserKnownHostsFile=${knownHosts}`,
      "GlobalKnownHostsFile=/dev/null",
      "StrictHostKeyChecking=yes",
      "LogLevel=ERROR",
    ],
    stop: () => proc!.stop(),
    restart: async () => {
      await proc!.stop();
      proc = await launch(t, config, port);
    },
  };
}

async function launch(t: Cleanup, config: string, port: number): Promise<TestProcess> {
  const proc = startProcess(t, SSHD, ["-D", "-e", "-f", config]);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (await accepts(port)) return proc;
    if (proc.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`sshd did not start on port ${port}:\n${proc.stderr.join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    import("node:net").then(({ connect }) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => { s.destroy(); resolve(true); });
      s.once("error", () => resolve(false));
    });
  });
}

/** A TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}
