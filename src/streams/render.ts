/**
 * The nginx files of the gateway's streams: the main configuration of its
 * own nginx, and one block file per stream. Only values that passed
 * validate.ts reach them.
 *
 * @module
 */
import { BUILTIN_MODULE, type StreamSettings } from "./settings.ts";

/** One published stream: a gateway port relayed to a backend. */
export interface StreamBlock {
  port: number;
  /** `unix:/path` or `host:port`, checked. */
  backend: string;
  /** The user who holds it, or `admin`. */
  owner: string;
  name: string;
}

/** The file name of a stream's block in the stream directory. */
export function blockFileName(settings: Pick<StreamSettings, "prefix">, port: number): string {
  return `${settings.prefix}${port}.conf`;
}

/** The block file of one stream. */
export function renderBlock(stream: StreamBlock, settings: StreamSettings): string {
  const lines = [
    `# Written by conductor-server: stream of ${stream.owner}, service ${stream.name}. Do not edit; it is rewritten.`,
    "server {",
    `    listen ${stream.port};`,
    `    proxy_pass ${stream.backend};`,
    `    proxy_timeout ${settings.idleTimeoutS}s;`,
    "    proxy_connect_timeout 10s;",
    ...settings.allow.map((mask) => `    allow ${mask};`),
    ...settings.deny.map((mask) => `    deny ${mask};`),
    // With an allow list, only the addresses it names get in.
    ...(settings.allow.length > 0 ? ["    deny all;"] : []),
  ];
  if (settings.maxConnections > 0) lines.push(`    limit_conn ${LIMIT_ZONE} ${settings.maxConnections};`);
  if (settings.proxyProtocol) lines.push("    proxy_protocol on;");
  lines.push("}", "");
  return lines.join("\n");
}

/** The shared-memory zone that counts each stream's connections (keyed by port). */
const LIMIT_ZONE = "conductor_streams";

/** Where the gateway's own nginx keeps its files. */
export interface NginxPaths {
  /** nginx's prefix (-p): pid file and the stream directory by default. */
  prefix: string;
  /** The stream directory. */
  streamDir: string;
}

/**
 * The main configuration of the gateway's own nginx: the stream module by
 * absolute path, logs to stderr (read by the gateway), the blocks of the
 * stream directory. `user`: the workers' user and group, when the gateway
 * runs as root (else nginx would switch them to nobody).
 */
export function renderMainConfig(settings: StreamSettings, paths: NginxPaths, user?: { name: string; group: string }): string {
  return [
    "# Written by conductor-server at each start: its own nginx, for TCP streams only.",
    ...(settings.module === BUILTIN_MODULE ? [] : [`load_module ${settings.module};`]),
    "daemon off;",
    "master_process on;",
    "worker_processes 1;",
    ...(user === undefined ? [] : [`user ${user.name} ${user.group};`]),
    `pid ${paths.prefix}/nginx.pid;`,
    "error_log stderr notice;",
    "events { worker_connections 4096; }",
    "stream {",
    `    limit_conn_zone $server_port zone=${LIMIT_ZONE}:1m;`,
    `    include ${paths.streamDir}/${settings.prefix}*.conf;`,
    "}",
    "",
  ].join("\n");
}
