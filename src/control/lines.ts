/**
 * Splits a byte stream into UTF-8 lines, with a bound on line length.
 *
 * @module
 */
import { StringDecoder } from "node:string_decoder";
import type { Readable } from "node:stream";
import { MAX_LINE_BYTES } from "./protocol.ts";

/** Handlers of {@link readLines}. */
export interface LineHandlers {
  /** One complete line, without its `\n` (and without a trailing `\r`). */
  line(line: string): void;
  /** The stream ended; `rest` is an unterminated last line, if any. */
  end(rest: string): void;
  /** A line grew past the limit; reading stops. */
  overflow(): void;
}

/** Reads lines from `stream` and calls `handlers`; returns a function that stops reading. */
export function readLines(stream: Readable, handlers: LineHandlers, maxBytes = MAX_LINE_BYTES): () => void {
  const decoder = new StringDecoder("utf8");
  let buffered = "";
  let stopped = false;
  const onData = (chunk: Buffer): void => {
    if (stopped) return;
    buffered += decoder.write(chunk);
    let nl: number;
    while (!stopped && (nl = buffered.indexOf("\n")) !== -1) {
      let line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      handlers.line(line);
    }
    if (!stopped && Buffer.byteLength(buffered) > maxBytes) {
      stop();
      handlers.overflow();
    }
  };
  const onEnd = (): void => {
    if (stopped) return;
    stop();
    handlers.end(buffered + decoder.end());
  };
  const stop = (): void => {
    stopped = true;
    stream.off("data", onData);
    stream.off("end", onEnd);
  };
  stream.on("data", onData);
  stream.on("end", onEnd);
  return stop;
}
