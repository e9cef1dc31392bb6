/**
 * conductor as a library: publish an app that listens on a UNIX socket on a
 * conductor gateway over SSH, and look up, verify and list the user's live
 * services, as `conductor`, `conductor show`, `verify` and `list` do.
 *
 * @example
 * ```ts
 * import { register, verify } from "conductor";
 *
 * const service = await register({ gateway: "gw.example.org", socket: "/home/ann/db.sock", key: "db" });
 * console.log("open", service.authLink);
 * // A client presents a key over the service's own protocol:
 * if (!(await verify("db", presentedKey))) socket.destroy();
 * await service.close();
 * ```
 *
 * @module
 */
export { list, register, show, verify, type RegisterOptions, type Registered } from "./client/library.ts";
export type { ClientEvent } from "./client/events.ts";
export type { ServiceRecord } from "./registry/services.ts";
export { ConductorError, type ErrorCode } from "./lib/errors.ts";
