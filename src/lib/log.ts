/**
 * JSON-lines logging on stderr: one object per line with `time`, `level`, `msg` and fields.
 *
 * Nothing secret is ever passed here: tokens are not logged, request paths are
 * logged without their query string.
 *
 * @module
 */

/** Severity of a log line; `debug` lines appear only in verbose mode. */
export type Level = "debug" | "info" | "warn" | "error";

/** Extra fields of a log line. */
export type Fields = Record<string, unknown>;

/** A logger writing JSON lines. */
export interface Logger {
  /** True when debug lines are written (callers may skip building fields otherwise). */
  readonly verbose: boolean;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Write debug lines too. Default false. */
  verbose?: boolean;
  /** Where lines go. Default `process.stderr`. */
  write?: (line: string) => void;
  /** Fields added to every line, e.g. `{ program: "conductor-server" }`. */
  base?: Fields;
}

/** Creates a logger that writes one JSON object per line. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const verbose = options.verbose ?? false;
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const base = options.base ?? {};
  const emit = (level: Level, msg: string, fields?: Fields): void => {
    const record = { time: new Date().toISOString(), level, msg, ...base, ...fields };
    write(JSON.stringify(record, replaceErrors) + "\n");
  };
  return {
    verbose,
    debug: (msg, fields) => { if (verbose) emit("debug", msg, fields); },
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
  };
}

/** A logger that drops everything (for library use without logs). */
export const silentLogger: Logger = {
  verbose: false,
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

function replaceErrors(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as NodeJS.ErrnoException).code;
    return code ? { message: value.message, code } : { message: value.message };
  }
  if (typeof value === "bigint") return Number(value);
  return value;
}
