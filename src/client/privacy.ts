/**
 * Whether other users of the compute node can reach the app's socket: some
 * apps make their sockets world-writable (uvicorn chmods 0666, gunicorn's
 * default umask gives 0777), and then only the directory stands between the
 * app and every other user of the node.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { dirname } from "node:path";

/** Why other users can connect to `socket`, or null when they cannot. */
export async function socketExposure(socket: string): Promise<string | null> {
  try {
    const st = await fs.stat(socket);
    if ((st.mode & 0o002) === 0) return null;
    // Connecting needs write permission on the socket and search permission on every directory above it.
    for (let dir = dirname(socket); ; dir = dirname(dir)) {
      const d = await fs.stat(dir);
      if ((d.mode & 0o001) === 0) return null;
      if (dir === "/") break;
    }
    return `the app's socket ${socket} is writable by all users (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}) ` +
      `and every directory above it lets them through, so other users of this node can use the app without a token; ` +
      `put the socket in a private directory (mkdir -m 700), or make the app create it 0600`;
  } catch {
    return null;
  }
}
