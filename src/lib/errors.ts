/**
 * Errors that carry a stable code and a message a sysadmin or a user can act on.
 *
 * Messages read "Cannot <action>: <state>; <what to do>", e.g.
 * "Cannot register route: socket /run/conductor/sockets/x/socket is world-accessible (mode 0666); chmod 660 it".
 *
 * @module
 */

/** Stable error codes, one per failure a caller may want to tell apart. */
export type ErrorCode =
  | "CONDUCTOR_ERR_USAGE"
  | "CONDUCTOR_ERR_PROTOCOL"
  | "CONDUCTOR_ERR_KEY_INVALID"
  | "CONDUCTOR_ERR_KEY_TAKEN"
  | "CONDUCTOR_ERR_HOST_TAKEN"
  | "CONDUCTOR_ERR_ROUTE_LIMIT"
  | "CONDUCTOR_ERR_SOCKET_MISSING"
  | "CONDUCTOR_ERR_SOCKET_TYPE"
  | "CONDUCTOR_ERR_SOCKET_LINKS"
  | "CONDUCTOR_ERR_SOCKET_MODE"
  | "CONDUCTOR_ERR_SOCKET_UNREACHABLE"
  | "CONDUCTOR_ERR_SOCKET_IN_USE"
  | "CONDUCTOR_ERR_USER_UNKNOWN"
  | "CONDUCTOR_ERR_TLS"
  | "CONDUCTOR_ERR_RUNTIME_DIR"
  | "CONDUCTOR_ERR_SSH"
  | "CONDUCTOR_ERR_STATE"
  | "CONDUCTOR_ERR_LOCK"
  | "CONDUCTOR_ERR_NOT_FOUND"
  | "CONDUCTOR_ERR_AGENT"
  | "CONDUCTOR_ERR_STREAM_INVALID"
  | "CONDUCTOR_ERR_STREAM_REFUSED"
  | "CONDUCTOR_ERR_NGINX"
  | "CONDUCTOR_ERR_RATE"
  | "CONDUCTOR_ERR_BUSY"
  | "CONDUCTOR_ERR_IDLE_CLOSED"
  | "CONDUCTOR_ERR_INTERNAL";

/** An error with a stable `code`, and a `cause` where one exists. */
export class ConductorError extends Error {
  /** Stable machine-readable code, e.g. `CONDUCTOR_ERR_SOCKET_MODE`. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConductorError";
    this.code = code;
  }
}

/**
 * The gateway refused a registration: trying again would not help. `gatewayCode`
 * is the code the gateway gave (an extension of the protocol; the original
 * server gives none), e.g. `CONDUCTOR_ERR_KEY_TAKEN` or `CONDUCTOR_ERR_ROUTE_LIMIT`.
 */
export class RegistrationRefused extends ConductorError {
  readonly gatewayCode: string | undefined;

  constructor(reason: string, gatewayCode?: string) {
    super("CONDUCTOR_ERR_PROTOCOL", reason);
    this.name = "RegistrationRefused";
    this.gatewayCode = gatewayCode;
  }
}

/** An app connection failed, with an errno-like code: ETIMEDOUT, EEMPTY, ... */
export class UpstreamError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "UpstreamError";
    this.code = code;
  }
}

/** A response from an app that cannot be forwarded. */
export class BadResponseError extends Error {
  constructor(reason: string) {
    super(`Cannot forward response from app: ${reason}`);
    this.name = "BadResponseError";
  }
}

/** The gateway closed the control connection before it sent the line awaited. */
export class ControlClosed extends ConductorError {
  constructor(what: string) {
    super("CONDUCTOR_ERR_PROTOCOL", `Cannot register: the gateway closed the control connection before sending ${what}`);
  }
}

/** True when `err` is a Node system error with the given errno code (`ENOENT`, …). */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/** The message of any thrown value, for logs and replies. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A usage error of `program`'s command line: the reason, then where to read more ("Try 'PROGRAM --help'."). */
export function usageError(program: string, reason: string): ConductorError {
  return new ConductorError("CONDUCTOR_ERR_USAGE", `${reason}\nTry '${program} --help'.`);
}
