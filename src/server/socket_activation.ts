/**
 * Listening sockets handed over by systemd (socket activation, sd_listen_fds(3)):
 * a `.socket` unit holds the front end's port or socket, and the service gets it
 * as file descriptor 3 with `LISTEN_PID` and `LISTEN_FDS` set.
 *
 * @module
 */
import { ConductorError } from "../lib/errors.ts";

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
    throw new ConductorError("CONDUCTOR_ERR_USAGE", `systemd passed LISTEN_FDS=${count}, which is not a count of sockets; check the .socket unit`);
  }
  if (count === "0") return undefined;
  if (count !== "1") {
    throw new ConductorError("CONDUCTOR_ERR_USAGE",
      `systemd passed ${count} sockets${names === undefined ? "" : ` (${names})`}, but conductor-server listens on one; give its .socket unit a single ListenStream= line`);
  }
  return FIRST_FD;
}
