/**
 * Steady load for the reliability tests: workers send requests in a loop
 * over keep-alive connections (HTTP or HTTPS) and sort every outcome (a checked success, an
 * error status, a connection cut before or after the response head, a hang,
 * a corrupted body), with the time it happened, so that a test can hold
 * each outcome against the faults it caused.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { pattern } from "../fixtures/app.ts";

/** How a request ended. */
export type OutcomeKind =
  /** 200 and the body is exactly what the app sends. */
  | "ok"
  /** A complete answer with another status. */
  | "status"
  /** The connection failed or closed before a response head arrived. */
  | "noAnswer"
  /** The connection closed after the head, before the body was complete. */
  | "cut"
  /** 200 and a complete body that is not what the app sent. */
  | "corrupt"
  /** Nothing for the whole time limit. */
  | "hang";

/** One request's fate. */
export interface Outcome {
  kind: OutcomeKind;
  status: number;
  /** When it was sent and when it ended (ms since the epoch). */
  start: number;
  end: number;
  what: string;
  host: string;
  error?: string;
  /** It went over a kept-alive connection. */
  reused: boolean;
  /** It is the second try of a GET whose kept-alive connection was closed under it. */
  retried?: boolean;
}

/** A route to load. */
export interface LoadTarget {
  host: string;
  token: string;
}

/** Options of {@link startLoad}. */
export interface LoadOptions {
  port: number;
  targets: LoadTarget[];
  workers: number;
  /** A request with no end after this long is a hang. */
  hangMs: number;
  /** HTTPS (certificates are not checked) rather than HTTP. */
  secure: boolean;
}

/** Load in progress. */
export interface Load {
  readonly outcomes: Outcome[];
  /** Stops the workers after their current request; resolves when they are done. */
  stop(): Promise<void>;
}

const UPLOAD = pattern(64 * 1024);
const UPLOAD_SHA = createHash("sha256").update(UPLOAD).digest("hex");

/** The requests the workers cycle through, with the check of each answer. */
const REQUESTS: Array<{ what: string; method: string; path: string; body?: Buffer; check(body: Buffer): boolean }> = [
  { what: "small", method: "GET", path: "/hello", check: (b) => b.toString() === "hello\n" },
  { what: "256 KiB", method: "GET", path: "/bytes?n=262144", check: (b) => b.equals(pattern(262144)) },
  { what: "chunked 100 kB", method: "GET", path: "/chunked?n=100000", check: (b) => b.equals(pattern(100000)) },
  {
    what: "upload 64 KiB", method: "POST", path: "/upload", body: UPLOAD,
    check: (b) => { try { const r = JSON.parse(b.toString()); return r.length === UPLOAD.length && r.sha256 === UPLOAD_SHA; } catch { return false; } },
  },
];

/** Starts `workers` request loops against the targets through HTTPS on 127.0.0.1:`port`. */
export function startLoad(options: LoadOptions): Load {
  const agent = options.secure
    ? new HttpsAgent({ keepAlive: true, maxSockets: options.workers, rejectUnauthorized: false })
    : new HttpAgent({ keepAlive: true, maxSockets: options.workers });
  const outcomes: Outcome[] = [];
  let running = true;
  const worker = async (w: number): Promise<void> => {
    for (let i = w; running; i++) {
      const target = options.targets[i % options.targets.length];
      const r = REQUESTS[Math.floor(i / options.targets.length) % REQUESTS.length];
      let outcome = await once(options, agent, target, r);
      // As browsers do (RFC 9112 section 9.3.1): a GET that found its kept-alive connection closed is sent again, on a new one.
      if (outcome.kind === "noAnswer" && outcome.reused && r.method === "GET") outcome = { ...await once(options, false, target, r), retried: true };
      outcomes.push(outcome);
      // A failing route answers at once: pace the retries as a browser would, not in a tight loop.
      if (outcome.kind !== "ok") await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const done = Promise.all(Array.from({ length: options.workers }, (_, w) => worker(w)));
  return {
    outcomes,
    async stop() {
      running = false;
      await done;
      agent.destroy();
    },
  };
}

function once(options: LoadOptions, agent: HttpAgent | false, target: LoadTarget, r: (typeof REQUESTS)[number]): Promise<Outcome> {
  const start = Date.now();
  return new Promise((resolve) => {
    let head = false;
    let status = 0;
    let settled = false;
    const finish = (kind: OutcomeKind, error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ kind, status, start, end: Date.now(), what: r.what, host: target.host, reused: req.reusedSocket, ...(error === undefined ? {} : { error }) });
    };
    const req = (options.secure ? httpsRequest : httpRequest)({
      host: "127.0.0.1", port: options.port, method: r.method, path: r.path, agent,
      ...(options.secure ? { servername: target.host, rejectUnauthorized: false } : {}),
      headers: { Host: target.host, Cookie: `authorization=${target.token}`, ...(r.body ? { "Content-Length": r.body.length } : {}) },
    }, (res) => {
      head = true;
      status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        if (status !== 200) finish("status", status < 500 ? Buffer.concat(chunks).toString("utf8", 0, 200) : undefined);
        else finish(r.check(Buffer.concat(chunks)) ? "ok" : "corrupt");
      });
      res.on("error", (err) => finish("cut", err.message));
      res.on("close", () => { if (!res.complete) finish("cut", "closed before the end of the body"); });
    });
    const timer = setTimeout(() => {
      finish("hang");
      req.destroy();
    }, options.hangMs);
    req.on("error", (err) => finish(head ? "cut" : "noAnswer", err.message));
    req.end(r.body);
  });
}
