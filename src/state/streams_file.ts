/**
 * The gateway's streams as stored: `<state dir>/streams.json`, one file for
 * every user's streams and the admins' (ports are shared by all), with the
 * sticky ports, `owner/name → port`, so that a service gets its port back
 * after a reconnect or a restart while it is free. Written through one
 * queue: a save that arrives while one is being written is written after
 * it, and saves in between are merged.
 *
 * @module
 */
import { join } from "node:path";
import { messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { readJson, writeJsonAtomic } from "./json_file.ts";

/** The owner of streams an admin made through the admin API. */
export const ADMIN_OWNER = "admin";

/** A stream as the gateway keeps it. */
export interface StreamRecord {
  /** The gateway port. */
  port: number;
  /** The user who holds it, or `admin`. */
  owner: string;
  /** The service name, unique per owner. */
  name: string;
  /** `unix:/path` (a user's forwarded socket) or `host:port` (an admin's backend), as given. */
  backend: string;
  /** An admin's `host:port` backend: the address its name resolved to when the stream was made, which nginx relays to. */
  address?: string;
  /** A user's stream: the client directory holding the forwarded socket. */
  directory?: string;
  /** A user's stream: the user's uid (the socket's owner). */
  uid?: number;
  /** A user's stream: hex blake2b-512 of its run's token. */
  auth?: string;
  /** ISO time it was published. */
  created: string;
}

/** What the file holds. */
export interface StoredStreams {
  streams: StreamRecord[];
  /** `owner/name` → the port that service had last, oldest first. */
  sticky: Map<string, number>;
}

/** The streams file of one gateway. */
export class StreamsFile {
  readonly path: string;
  readonly #logger: Logger;
  #writing: Promise<void> | null = null;
  #next: StoredStreams | null = null;

  constructor(stateDir: string, logger: Logger) {
    this.path = join(stateDir, "streams.json");
    this.#logger = logger;
  }

  /** Reads the file; a missing or corrupt one (set aside and logged) gives nothing stored. */
  async load(): Promise<StoredStreams> {
    const stored = await readJson(this.path).catch((err) => {
      this.#logger.error(messageOf(err), { path: this.path });
      return undefined;
    }) as { streams?: unknown; sticky?: unknown } | undefined;
    const sticky = new Map<string, number>();
    if (stored?.sticky !== null && typeof stored?.sticky === "object") {
      for (const [key, port] of Object.entries(stored.sticky)) if (typeof port === "number") sticky.set(key, port);
    }
    return { streams: Array.isArray(stored?.streams) ? stored.streams.filter(isStreamRecord) : [], sticky };
  }

  /** Saves `streams`; resolves once they (or a later save) are on disk. Failures are logged: memory stays right. */
  save(streams: StoredStreams): Promise<void> {
    this.#next = streams;
    this.#writing ??= this.#drain();
    return this.#writing;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#next !== null) {
        const { streams, sticky } = this.#next;
        this.#next = null;
        await writeJsonAtomic(this.path, { version: 1, streams, sticky: Object.fromEntries(sticky) })
          .catch((err) => this.#logger.error(`Cannot save the streams: ${messageOf(err)}`, { path: this.path }));
      }
    } finally {
      this.#writing = null;
    }
  }
}

function isStreamRecord(r: unknown): r is StreamRecord {
  const x = r as StreamRecord;
  return typeof x === "object" && x !== null && typeof x.port === "number" && typeof x.owner === "string" &&
    typeof x.name === "string" && typeof x.backend === "string" && typeof x.created === "string";
}
