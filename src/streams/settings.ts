/**
 * Settings of the gateway's TCP streams, with stream-conductor's defaults
 * (port range 9000-9009, prefix `_conductor_`, nginx at /usr/sbin/nginx).
 *
 * @module
 */
import type { PortRange } from "./validate.ts";

/** How conductor-server publishes TCP services through nginx. */
export interface StreamSettings {
  /** `own`: the gateway runs its own nginx; `site`: the site's nginx includes the gateway's blocks from {@link dir}. */
  mode: "own" | "site";
  /** Ports handed out, both ends included. */
  range: PortRange;
  /** The nginx program. */
  nginx: string;
  /** The stream module nginx loads, by absolute path, or {@link BUILTIN_MODULE}. */
  module: string;
  /** Prefix of the block files the gateway owns in the stream directory. */
  prefix: string;
  /** Where the block files go; undefined: `<runtime dir>/nginx/stream.d`. */
  dir?: string;
  /** The host name given to clients in `address` (HOST:PORT). */
  host: string;
  /** Streams one user may hold at once. */
  perUser: number;
  /** nginx `allow` masks; with any, a last `deny all` refuses the addresses they do not name. */
  allow: string[];
  /** nginx `deny` masks, checked before the `allow` ones: a deny inside an allowed block holds. */
  deny: string[];
  /** Connections to one port at once (nginx `limit_conn` keyed by port); 0 for no cap. */
  maxConnections: number;
  /** Connections from one client address to one port at once (nginx `limit_conn` keyed by address and port); 0 for no cap. */
  maxConnectionsPerAddress: number;
  /** How long a user's port stays reserved for the same user and name after its client dropped without a goodbye, in ms. */
  graceMs: number;
  /** nginx `proxy_timeout`, in seconds: a connection silent both ways for this long is closed. */
  idleTimeoutS: number;
  /** Send the PROXY protocol header to the app, which then sees the client's address. */
  proxyProtocol: boolean;
}

/** The `module` of an nginx built with the stream module inside (`--with-stream`, as Guix's and Nix's): nothing to load. */
export const BUILTIN_MODULE = "builtin";

/** Defaults; the host is the machine's name unless given. */
export const DEFAULT_STREAM_SETTINGS: Omit<StreamSettings, "host"> = {
  mode: "own",
  range: { first: 9000, last: 9009 },
  nginx: "/usr/sbin/nginx",
  module: "/usr/lib/nginx/modules/ngx_stream_module.so",
  prefix: "_conductor_",
  perUser: 2,
  allow: [],
  deny: [],
  maxConnections: 1024,
  maxConnectionsPerAddress: 256,
  graceMs: 120_000,
  // nginx's own default, 10 minutes, drops idle database and shell sessions.
  idleTimeoutS: 24 * 3600,
  proxyProtocol: false,
};
