/**
 * Why a socket on the gateway could not be reached through a forward. For a
 * socket forward, OpenSSH tells the client only that sshd could not open the
 * connection ("connect failed: open failed"); the errno is in sshd's log on
 * the gateway alone. So conductor asks the gateway itself, through the
 * master, with test(1): whether the user may enter the socket's directory,
 * whether the path exists, is a socket, and may be connected to.
 *
 * @module
 */
import { dirname } from "node:path";
import type { SshMaster } from "./master.ts";

/**
 * A sentence saying why the socket `path` on the gateway does not take
 * connections of the user SSH logs in as, and what to check: no such
 * socket, permission denied, or nobody listening. Without a shell on the
 * gateway it says what the possible causes are.
 */
export async function diagnoseRemoteSocket(master: SshMaster, path: string): Promise<string> {
  const dir = dirname(path);
  const holds = async (flag: string, file: string): Promise<boolean | null> => {
    try {
      const result = await master.exec(["test", flag, file]);
      return result.code === 0 ? true : result.code === 1 && result.stdout === "" && result.stderr === "" ? false : null;
    } catch {
      return null;
    }
  };
  // test(1) prints nothing; a login shell that refuses commands (nologin) says so and exits 1.
  if (await holds("-d", "/") !== true) {
    return `sshd on the gateway could not connect to it: there is no such socket, or you may not reach it (permission denied); conductor cannot look closer without a shell there. ` +
      `Ask the gateway's admin to check that conductor-server runs with its control socket at ${path}, that ${dir} is mode 0755, and what sshd's log says`;
  }
  if (await holds("-e", path)) {
    if (!await holds("-S", path)) return `${path} is not a socket; check the control socket path (the /path after the gateway's host)`;
    if (!await holds("-w", path)) return `permission denied: you may not write to ${path} (the control socket must be mode 0777); ask the gateway's admin`;
    return `${path} is a socket you may use, but nothing answered on it: is conductor-server running? (a socket stays behind when it dies); ask the gateway's admin`;
  }
  if (!await holds("-d", dir)) {
    return `no such socket: there is no directory ${dir} on the gateway (or you may not enter a directory above it); check the control socket path (the /path after the gateway's host) and conductor-server's --runtime-dir`;
  }
  if (!await holds("-x", dir)) {
    return `permission denied: you may not enter ${dir}, the gateway's runtime directory; its admin must make it mode 0755, owned by the gateway's user`;
  }
  return `no such socket: there is no ${path} on the gateway; check that conductor-server runs there (with --runtime-dir ${dir}), or the control socket path (the /path after the gateway's host)`;
}
