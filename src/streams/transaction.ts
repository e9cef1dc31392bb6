/**
 * The one change of the streams that still reloads nginx: rewriting some
 * port blocks (an admin's stream to `host:port`, or a port another program
 * held at start and that is free now). One transaction at a time: the new
 * files are written atomically, `nginx -t` checks the whole configuration,
 * nginx reloads, and the ports that must now be listened on are confirmed
 * by connecting (`nginx -s reload` succeeds even when a new port cannot be
 * bound, and nginx then keeps its whole old configuration). On any failure
 * the previous files come back byte for byte and nginx reloads again; the
 * caller gets nginx's own words.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { ConductorError, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { writeFileAtomic } from "../state/json_file.ts";
import type { OwnNginx } from "./nginx.ts";
import { settlePorts } from "./ports.ts";

/** A change of block files: file name → new text, or null to remove it. */
export type BlockChanges = Map<string, string | null>;

/**
 * Applies `changes` in `streamDir` and has `nginx` load them; `opened`
 * are ports the new files listen on that nginx did not before. Throws a
 * `CONDUCTOR_ERR_NGINX` error after putting everything back.
 */
export async function applyBlocks(nginx: OwnNginx, streamDir: string, changes: BlockChanges, opened: number[], logger: Logger): Promise<void> {
  const before = new Map<string, Buffer | null>();
  for (const file of changes.keys()) before.set(file, await fs.readFile(join(streamDir, file)).catch(() => null));
  let reloaded = false;
  try {
    await writeBlocks(streamDir, changes);
    const complaint = await nginx.test();
    if (complaint !== null) throw nginxError(`nginx -t refused the configuration: ${complaint}`);
    reloaded = true;
    await nginx.reload();
    const silent = await settlePorts(opened, true);
    if (silent.length > 0) throw nginxError(`port ${silent.join(", ")} did not answer after nginx reloaded; nginx said: ${nginx.recentLog(3).join(" | ")}`);
  } catch (err) {
    await rollBack(nginx, streamDir, before, reloaded, logger);
    throw err;
  }
}

/** Writes (atomically) or removes each file of `changes`. */
export async function writeBlocks(streamDir: string, changes: Map<string, string | Buffer | null>): Promise<void> {
  for (const [file, text] of changes) {
    if (text === null) await fs.rm(join(streamDir, file), { force: true });
    else await writeFileAtomic(join(streamDir, file), text, 0o644);
  }
}

/** Puts the files back as `before`, byte for byte, and has nginx serve them again. */
async function rollBack(nginx: OwnNginx, streamDir: string, before: Map<string, Buffer | null>, reloaded: boolean, logger: Logger): Promise<void> {
  try {
    await writeBlocks(streamDir, before);
    if (!reloaded) return;
    await nginx.reload();
    logger.info("stream change rolled back; nginx serves the previous configuration", { files: [...before.keys()] });
  } catch (err) {
    logger.error(`Cannot roll back the stream files in ${streamDir}: ${messageOf(err)}; check them and nginx's log`, { error: err });
  }
}

function nginxError(message: string): ConductorError {
  return new ConductorError("CONDUCTOR_ERR_NGINX", message);
}
