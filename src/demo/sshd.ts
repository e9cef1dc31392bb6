/**
 * A private sshd for the demo: on a free loopback port, with throwaway host
 * and user keys in a directory of its own, letting in only the user who runs
 * it; the system's ssh configuration is neither read nor changed.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { userInfo } from "node:os";
import { join } from "node:path";
import { startChild, type Child } from "./child.ts";

/** Where sshd is installed (Debian, Fedora, most others). */
export const SSHD = "/usr/sbin/sshd";

/** A running private sshd and the ssh options that log in to it. */
export interface PrivateSshd {
  port: number;
  /** The user it lets in: whoever runs the demo. */
  user: string;
  /** `-o` options for ssh: the user's key and the host's, nothing from ~/.ssh. */
  clientOptions: string[];
  process: Child;
}

/** Starts sshd in `dir` (which must exist) and resolves once it accepts connections. */
export async function startPrivateSshd(dir: string): Promise<PrivateSshd> {
  const user = userInfo().username;
  const hostKey = join(dir, "host_ed25519");
  const userKey = join(dir, "id_ed25519");
  for (const key of [hostKey, userKey]) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "conductor-demo", "-f", key]);
  const authorized = join(dir, "authorized_keys");
  writeFileSync(authorized, readFileSync(userKey + ".pub"));
  const knownHosts = join(dir, "known_hosts");
  const config = join(dir, "sshd_config");
  // sshd's privilege separation directory, which a distribution's unit would otherwise create.
  if (process.geteuid?.() === 0 && !existsSync("/run/sshd")) mkdirSync("/run/sshd", { mode: 0o755 });
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${readFileSync(hostKey + ".pub", "utf8").split(" ").slice(0, 2).join(" ")}\n`);
    writeFileSync(config, [
      `Port ${port}`, "ListenAddress 127.0.0.1", `HostKey ${hostKey}`, `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${authorized}`, `AllowUsers ${user}`, "AuthenticationMethods publickey", "PasswordAuthentication no",
      "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", `PermitRootLogin ${user === "root" ? "prohibit-password" : "no"}`,
      "AllowStreamLocalForwarding yes", "AllowTcpForwarding yes", "X11Forwarding no", "PrintMotd no", "",
    ].join("\n"));
    chmodSync(config, 0o600);
    const sshd = startChild(SSHD, ["-D", "-e", "-f", config]);
    while (sshd.running && !await accepts(port)) await new Promise((r) => setTimeout(r, 50));
    if (sshd.running) {
      const clientOptions = [`IdentityFile=${userKey}`, "IdentitiesOnly=yes", `UserKnownHostsFile=${knownHosts}`, "GlobalKnownHostsFile=/dev/null",
        "StrictHostKeyChecking=yes", "LogLevel=ERROR"];
      return { port, user, clientOptions, process: sshd };
    }
    // Another program took the port between the choice and sshd's bind: try another.
    if (attempt >= 4 || !sshd.stderr.some((l) => l.includes("Address already in use"))) {
      throw new Error(`sshd did not start on port ${port}: ${sshd.stderr.join(" ").trim()}`);
    }
  }
}

/** True when something accepts a TCP connection on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => { socket.destroy(); resolve(true); });
    socket.once("error", () => resolve(false));
  });
}

/** A TCP port of 127.0.0.1 that was free a moment ago: `preferred` when it is, else any. */
export function freePort(preferred = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (err) => (preferred === 0 ? reject(err) : resolve(freePort())));
    server.listen(preferred, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
