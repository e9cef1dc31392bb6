/**
 * Listening sockets handed over by systemd (socket activation, sd_listen_fds(3)):
 * a `.socket` unit holds the front end's port or socket, and the service gets it
 * as file descriptor 3 with `LISTEN_PID` and `LISTEN_FDS` set.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { ConductorError } from "../lib/errors.ts";
import { readProcFile } from "../lib/proc.ts";

/** The first descriptor systemd passes (SD_LISTEN_FDS_START). */
const FIRST_FD = 3;

/**
 * The front end's listening descriptor passed by systemd to process `pid`, or
 * undefined when none was passed to it. Removes the variables from `env` so
 * that no child takes them for its own. Throws `CONDUCTOR_ERR_USAGE` when the
 * unit passes more than one socket or malformed values.
 */
export function takeActivatedSocket(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const { LISTEN_PID: forPid, LISTEN_FDS: count, LISTEN_FDNAMES: names } = env;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (forPid === undefined || count === undefined || forPid !== String(pid)) return undefined;
  if (!/^[0-9]+$/.test(count)) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot use the socket systemd passed: LISTEN_FDS=${count} is not a count of sockets; check the .socket unit`);
  }
  if (count === "0") return undefined;
  if (count !== "1") {
    throw new ConductorError("CONDUCTOR_ERR_USAGE",
      `Cannot use the sockets systemd passed: there are ${count}${names === undefined ? "" : ` (${names})`}, but conductor-server listens on one; give its .socket unit a single ListenStream= line`);
  }
  return FIRST_FD;
}

/**
 * What the socket systemd passed as `fd` is, found before listening on it: `{ port }` for a TCP socket, `{ fd }` for
 * a UNIX one; null when /proc does not say. Read from the process's own /proc (`proc`), which the unit's
 * ProcSubset=pid keeps: the socket's inode, looked up in the kernel's tables of sockets.
 */
export async function activatedAddress(fd: number, proc = "/proc/self"): Promise<{ port: number } | { fd: number } | null> {
  const link = await fs.readlink(`${proc}/fd/${fd}`).catch(() => "");
  const inode = /^socket:\[([0-9]+)\]$/.exec(link)?.[1];
  if (inode === undefined) return null;
  for (const table of ["tcp", "tcp6"]) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    const row = (await tableRows(`${proc}/net/${table}`)).find((fields) => fields[9] === inode);
    if (row !== undefined) return { port: parseInt(row[1].slice(row[1].lastIndexOf(":") + 1), 16) };
  }
  // Num RefCount Protocol Flags Type St Inode Path
  return (await tableRows(`${proc}/net/unix`)).some((fields) => fields[6] === inode) ? { fd } : null;
}

/** The rows of a table of /proc/net, split into fields, without the heading; none when it cannot be read. */
async function tableRows(path: string): Promise<string[][]> {
  const text = await readProcFile(path).catch(() => "");
  return text.split("\n").slice(1).map((line) => line.trim().split(/\s+/));
}
