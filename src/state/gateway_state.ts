/**
 * The gateway's durable state: one JSON file per user,
 * `<state dir>/users/<user>.json`, holding that user's routes (and later its
 * streams), so that a restart of conductor-server finds the routes whose
 * clients still live. Directories are 0700, files 0600, owned by the
 * gateway's user. Changes are queued per user and written together, at most
 * every 50 ms, each write atomic.
 *
 * @module
 */
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { ConductorError, isErrno, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { USER_NAME_RE } from "../lib/users.ts";
import { updateJson, readJson } from "./json_file.ts";
import { ensurePrivateDir } from "./private_dir.ts";

/** One route as stored. */
export interface RouteRecord {
  key: string;
  /** Registry name of the service (the key unless the client chose another). */
  name: string;
  uid: number;
  /** The forwarded socket. */
  socket: string;
  /** The client directory holding it. */
  directory: string;
  /** Hex blake2b-512 of the token. */
  auth: string;
  /** ISO time of the registration. */
  created: string;
}

/** A user's file. */
export interface UserFile {
  version: 1;
  user: string;
  routes: RouteRecord[];
}

/** File names are user names, which registration checks; anything else in the directory is ignored. */
const USER_FILE = new RegExp(`^(${USER_NAME_RE.source.slice(1, -1)})\\.json$`);
const FLUSH_MS = 50;

type Change = (file: UserFile) => void;

/** The state directory of a gateway. */
export class GatewayState {
  readonly usersDir: string;
  #logger: Logger;
  #pending = new Map<string, Change[]>();
  #flushing = new Map<string, Promise<void>>();

  constructor(stateDir: string, logger: Logger) {
    this.usersDir = join(stateDir, "users");
    this.#logger = logger;
  }

  /**
   * Creates the directories (0700) and checks that they belong to this
   * process's user; removes temporary files of writes a crash interrupted.
   */
  async prepare(): Promise<void> {
    try {
      await ensurePrivateDir(join(this.usersDir, ".."));
      await ensurePrivateDir(this.usersDir);
    } catch (err) {
      throw new ConductorError("CONDUCTOR_ERR_STATE",
        `Cannot use the state directory ${join(this.usersDir, "..")}: ${messageOf(err)}; create it for the gateway's user or choose another with --state-dir`, { cause: err });
    }
    for (const name of await fs.readdir(this.usersDir)) {
      if (name.startsWith(".") && name.endsWith(".tmp")) await fs.rm(join(this.usersDir, name), { force: true });
    }
  }

  /** Records a route (replacing the user's route of the same key). */
  saveRoute(user: string, record: RouteRecord): void {
    this.#change(user, (file) => {
      file.routes = file.routes.filter((r) => r.key !== record.key);
      file.routes.push(record);
    });
  }

  /** Forgets a route, if the stored one is still the one in `directory` (not a newer registration). */
  removeRoute(user: string, key: string, directory: string): void {
    this.#change(user, (file) => {
      file.routes = file.routes.filter((r) => r.key !== key || r.directory !== directory);
    });
  }

  /** Replaces a user's routes (after a restart checked them). */
  setRoutes(user: string, routes: RouteRecord[]): void {
    this.#change(user, (file) => { file.routes = routes; });
  }

  /** Every user's stored routes. Files that do not parse are set aside and logged. */
  async load(): Promise<UserFile[]> {
    const files: UserFile[] = [];
    for (const name of await fs.readdir(this.usersDir)) {
      const m = USER_FILE.exec(name);
      if (m === null) continue;
      const path = join(this.usersDir, name);
      try {
        const value = await readJson(path) as Partial<UserFile> | undefined;
        if (value === undefined) continue;
        files.push({ version: 1, user: m[1], routes: Array.isArray(value.routes) ? value.routes.filter(isRouteRecord) : [] });
      } catch (err) {
        this.#logger.error(messageOf(err), { path });
      }
    }
    return files;
  }

  /** Waits until every queued change is on disk, or `timeoutMs` passed (a disk that stays full). */
  async flush(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#flushing.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.all(this.#flushing.values()), new Promise((r) => setTimeout(r, 100))]);
    }
  }

  #change(user: string, change: Change): void {
    const queue = this.#pending.get(user);
    if (queue !== undefined) {
      queue.push(change);
      return;
    }
    this.#pending.set(user, [change]);
    if (!this.#flushing.has(user)) this.#flushing.set(user, this.#flushLoop(user));
  }

  /**
   * Writes a user's queued changes together, again while more arrive. A
   * write that fails (a full disk) leaves the old file intact; the changes
   * stay queued and are tried again, waiting from 1 s up to 30 s.
   */
  async #flushLoop(user: string): Promise<void> {
    let wait = FLUSH_MS;
    try {
      for (;;) {
        await new Promise((r) => setTimeout(r, wait));
        const changes = this.#pending.get(user);
        if (changes === undefined) return;
        this.#pending.delete(user);
        const path = join(this.usersDir, `${user}.json`);
        try {
          await updateJson<UserFile>(path, () => ({ version: 1, user, routes: [] }), (file) => {
            const next: UserFile = { version: 1, user, routes: Array.isArray(file.routes) ? file.routes.filter(isRouteRecord) : [] };
            for (const change of changes) change(next);
            return next;
          }, { onCorrupt: (err) => this.#logger.error(err.message, { path }) });
          if (changes.length > 0) await this.#removeIfEmpty(path);
          wait = FLUSH_MS;
        } catch (err) {
          // The old file stays intact; the route table in memory is still right.
          this.#pending.set(user, [...changes, ...(this.#pending.get(user) ?? [])]);
          wait = Math.min(30_000, Math.max(1000, wait * 2));
          this.#logger.error(`Cannot save the routes of ${user}: ${messageOf(err)}; trying again in ${wait / 1000} s`, { path });
        }
      }
    } finally {
      this.#flushing.delete(user);
      if (this.#pending.has(user)) this.#flushing.set(user, this.#flushLoop(user));
    }
  }

  async #removeIfEmpty(path: string): Promise<void> {
    const value = await readJson(path).catch(() => undefined) as UserFile | undefined;
    if (value !== undefined && value.routes.length === 0) {
      await fs.rm(path, { force: true }).catch((err) => { if (!isErrno(err, "ENOENT")) throw err; });
    }
  }
}

function isRouteRecord(r: unknown): r is RouteRecord {
  const x = r as RouteRecord;
  return typeof x === "object" && x !== null && typeof x.key === "string" && typeof x.name === "string" &&
    typeof x.uid === "number" && typeof x.socket === "string" && typeof x.directory === "string" &&
    typeof x.auth === "string" && typeof x.created === "string";
}
