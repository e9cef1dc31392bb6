/**
 * The links of the stream ports: `<runtime>/streams/PORT.sock`, a symbolic
 * link to the socket that port relays to. nginx connects to the link anew
 * for each client connection and the kernel follows it then, so pointing a
 * port elsewhere is a `symlink` and a `rename` (atomic) and closing it is
 * an `unlink`, with no reload. The directory is the gateway's alone: a link
 * planted there would redirect a port.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { ConductorError, isErrno, messageOf } from "../lib/errors.ts";
import { checkOwnDirectory } from "../state/private_dir.ts";

/** Mode of the links' directory: nginx's workers enter it, nobody lists it, only the gateway writes. */
const LINKS_DIR_MODE = 0o711;

/** The links of one gateway's stream ports. */
export class PortLinks {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates the directory (0711) or checks it: owned by the gateway, writable by nobody else. */
  async prepare(): Promise<void> {
    try {
      await fs.mkdir(this.dir, { mode: LINKS_DIR_MODE });
    } catch (err) {
      if (!isErrno(err, "EEXIST")) {
        throw new ConductorError("CONDUCTOR_ERR_RUNTIME_DIR", `Cannot create the stream links' directory ${this.dir}: ${messageOf(err)}`, { cause: err });
      }
    }
    await checkOwnDirectory(this.dir, "the stream links' directory");
    await fs.chmod(this.dir, LINKS_DIR_MODE);
  }

  /** The link of `port`, which its nginx block relays to. */
  path(port: number): string {
    return join(this.dir, `${port}.sock`);
  }

  /** Points `port` at `target` at once: new connections to the port reach it, those relayed already go on. */
  async link(port: number, target: string): Promise<void> {
    const temporary = join(this.dir, `.${port}.${randomBytes(6).toString("hex")}.tmp`);
    await fs.symlink(target, temporary);
    try {
      await fs.rename(temporary, this.path(port));
    } catch (err) {
      await fs.rm(temporary, { force: true });
      throw err;
    }
  }

  /** Closes `port` to new connections (nginx finds no socket and closes them); those relayed already go on. */
  async unlink(port: number): Promise<void> {
    await fs.rm(this.path(port), { force: true });
  }

  /** The ports that have a link now, with what each points at; removes leftovers of interrupted links. */
  async read(): Promise<Map<number, string>> {
    const links = new Map<number, string>();
    for (const name of await fs.readdir(this.dir)) {
      const m = /^([0-9]{1,5})\.sock$/.exec(name);
      if (m !== null) {
        const target = await fs.readlink(join(this.dir, name)).catch(() => null);
        if (target !== null) links.set(Number(m[1]), target);
      } else if (name.startsWith(".") && name.endsWith(".tmp")) {
        await fs.rm(join(this.dir, name), { force: true });
      }
    }
    return links;
  }
}
