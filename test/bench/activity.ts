/**
 * The cost of activity tracking (conductor --idle-timeout, --max-idle) on
 * the websocket path, in process: ns to follow the frame headers of one
 * browser message, to set beside the gateway's CPU per round trip.
 *
 * @module
 */
import { WebSocketActivity } from "../../src/gateway/activity.ts";

/** ns per 64-byte masked browser message given to the frame-header reader (median of 5 runs of 1 M). */
export function frameScanNs(): number {
  const frame = Buffer.concat([Buffer.from([0x82, 0x80 | 64, 1, 2, 3, 4]), Buffer.alloc(64, 97)]);
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const reader = new WebSocketActivity();
    const n = 1_000_000;
    let active = 0;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) if (reader.scan(frame)) active++;
    const ns = Number(process.hrtime.bigint() - start) / n;
    if (active !== n) throw new Error(`the reader saw ${active} of ${n} data frames`);
    runs.push(ns);
  }
  return runs.sort((a, b) => a - b)[2];
}
