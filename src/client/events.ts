/**
 * The client's events on stdout: one JSON object per line with the original
 * conductor's field names, which portals parse. New states and fields may
 * be added; none is ever renamed.
 *
 * | state | fields |
 * |---|---|
 * | execute | command, pid |
 * | waiting | socket, timeout, waited: the app has not listened yet (at start, then every minute) |
 * | connecting | user, host, port, timeout: ssh starts a connection (its ConnectTimeout, in seconds) |
 * | connect | user, host, port |
 * | controlConnect | path, banner |
 * | data | kind, data |
 * | live | config: { auth, key, urls } (and name, and fingerprint with --tls) |
 * | dead | |
 * | failed | reason |
 * | idle | seconds (since the last browser activity), and reason when the gateway closed the route (--max-idle) |
 * | exit | status |
 *
 * @module
 */
import { encodeLine } from "../control/protocol.ts";

/** A JSON value an event carries. */
type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** One event. */
export type ClientEvent =
  | { state: "execute"; command: string[]; pid: number }
  | { state: "waiting"; socket: string; timeout: number; waited: number }
  | { state: "connecting"; user: string | null; host: string; port: number | null; timeout: number }
  | { state: "connect"; user: string | null; host: string; port: number | null }
  | { state: "controlConnect"; path: string; banner: { [key: string]: Json } }
  | { state: "data"; kind: "stdout" | "stderr"; data: string }
  | { state: "live"; config: { auth: string; key: string; urls: string[]; name?: string; fingerprint?: string } }
  | { state: "dead" }
  | { state: "failed"; reason: string }
  | { state: "idle"; seconds: number; reason?: string }
  | { state: "exit"; status: number };

/** Where events go. */
export type EventSink = (event: ClientEvent) => void;

/**
 * The sink of a run, in which `exit` is the last event: what comes after it
 * (an SSH master that was still starting when the app ended) goes to `late`.
 */
export function endingAtExit(sink: EventSink, late: EventSink): EventSink {
  let exited = false;
  return (event) => {
    if (exited) return late(event);
    if (event.state === "exit") exited = true;
    sink(event);
  };
}

/** An event sink writing JSON lines (Python's formatting, as the original) to `write`. */
export function jsonLinesSink(write: (line: string) => void): EventSink {
  return (event) => write(encodeLine(event as unknown as { [key: string]: Json }));
}
