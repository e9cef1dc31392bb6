/**
 * The nginx files of the gateway's streams: the main configuration of its
 * own nginx, and one block file per port of the range. A port's block
 * relays to the port's symbolic link (a user's forwarded socket, swapped
 * without a reload) or, for an admin's stream to `host:port`, to the
 * address resolved when the stream was made. Only values that passed
 * validate.ts reach these files.
 *
 * @module
 */
import { BUILTIN_MODULE, type StreamSettings } from "./settings.ts";

/** What a port relays to: its symbolic link, or an address (an admin's `host:port` stream). */
export type PortTarget = { link: string } | { address: string; note: string };

/** The file name of a port's block in the stream directory. */
export function blockFileName(settings: Pick<StreamSettings, "prefix">, port: number): string {
  return `${settings.prefix}${port}.conf`;
}

/** What the nginx at hand can do, found out at start. */
export interface NginxFeatures {
  /** `proxy_half_close` (nginx 1.21.4 and later). */
  halfClose: boolean;
}

/** The block file of one port. */
export function renderPortBlock(port: number, target: PortTarget, settings: StreamSettings, features: NginxFeatures): string {
  const lines = [
    "link" in target
      ? `# Written by conductor-server: port ${port}, relayed to whatever its link points at. Do not edit.`
      : `# Written by conductor-server: port ${port}, ${target.note}. Do not edit.`,
    "server {",
    `    listen ${port};`,
    `    proxy_pass ${"link" in target ? `unix:${target.link}` : target.address};`,
    `    proxy_timeout ${settings.idleTimeoutS}s;`,
    "    proxy_connect_timeout 10s;",
    ...(features.halfClose ? ["    proxy_half_close on;"] : []),
    // nginx takes the first rule that matches: denials first, so that a deny inside an allowed block holds.
    ...settings.deny.map((mask) => `    deny ${mask};`),
    ...settings.allow.map((mask) => `    allow ${mask};`),
    // With an allow list, only the addresses it names get in.
    ...(settings.allow.length > 0 ? ["    deny all;"] : []),
  ];
  if (settings.maxConnectionsPerAddress > 0) lines.push(`    limit_conn ${ADDRESS_ZONE} ${settings.maxConnectionsPerAddress};`);
  if (settings.maxConnections > 0) lines.push(`    limit_conn ${PORT_ZONE} ${settings.maxConnections};`);
  if (settings.proxyProtocol) lines.push("    proxy_protocol on;");
  lines.push("}", "");
  return lines.join("\n");
}

/** The file name, in the stream directory, of the limit zones the port blocks use. */
export function zonesFileName(settings: Pick<StreamSettings, "prefix">): string {
  return `${settings.prefix}zones.conf`;
}

/** The limit zones the port blocks use, in the stream context (nginx resolves them whatever the order of the files). */
export function renderZones(): string {
  return [
    "# Written by conductor-server: the limit zones of its stream ports. Do not edit.",
    `limit_conn_zone $server_port zone=${PORT_ZONE}:1m;`,
    `limit_conn_zone $binary_remote_addr$server_port zone=${ADDRESS_ZONE}:16m;`,
    "",
  ].join("\n");
}

/** The shared-memory zone that counts each port's connections. */
const PORT_ZONE = "conductor_streams";
/** The shared-memory zone that counts the connections of each client address to each port. */
const ADDRESS_ZONE = "conductor_addresses";

/** Where the gateway's own nginx keeps its files. */
export interface NginxPaths {
  /** nginx's prefix (-p), also the workers' working directory, which marks them as the gateway's. */
  prefix: string;
  /** The stream directory. */
  streamDir: string;
  /** The pid file. */
  pidFile: string;
  /** nginx's error log, which the gateway reads. */
  errorLog: string;
}

/** How many connections nginx's workers may hold, and the descriptors they need for them. */
export interface NginxSizing {
  workerConnections: number;
  rlimitNofile: number;
}

/** Descriptors a worker keeps besides its connections: listening sockets, logs, and some room. */
const SPARE_DESCRIPTORS = 64;
/** Connections per worker when no cap bounds them. */
const UNCAPPED_CONNECTIONS = 16_384;

/**
 * Sizes the workers for `ports` ports at the caps of `settings`: each relayed
 * connection takes two (the client's and the backend's), and any one worker
 * may get them all. Kept within `hardLimit` descriptors; `capped` says when
 * that lowered it.
 */
export function sizeNginx(settings: StreamSettings, ports: number, hardLimit: number): NginxSizing & { capped: boolean } {
  const wanted = settings.maxConnections > 0 ? 2 * ports * settings.maxConnections + SPARE_DESCRIPTORS : UNCAPPED_CONNECTIONS;
  const room = Math.max(SPARE_DESCRIPTORS, hardLimit - 2 * SPARE_DESCRIPTORS - ports);
  const workerConnections = Math.min(wanted, room);
  return { workerConnections, rlimitNofile: workerConnections + SPARE_DESCRIPTORS + ports, capped: workerConnections < wanted };
}

/**
 * The main configuration of the gateway's own nginx: the stream module by
 * absolute path, its log in a file the gateway reads, as many workers as
 * cores, and the files of the stream directory (the limit zones and the
 * port blocks). `user`:
 * the workers' user and group, when the gateway runs as root (else nginx
 * would switch them to nobody).
 */
export function renderMainConfig(settings: StreamSettings, paths: NginxPaths, sizing: NginxSizing, user?: { name: string; group: string }): string {
  return [
    "# Written by conductor-server at each start: its own nginx, for TCP streams only.",
    ...(settings.module === BUILTIN_MODULE ? [] : [`load_module ${settings.module};`]),
    "master_process on;",
    "worker_processes auto;",
    `worker_rlimit_nofile ${sizing.rlimitNofile};`,
    `working_directory ${paths.prefix};`,
    ...(user === undefined ? [] : [`user ${user.name} ${user.group};`]),
    `pid ${paths.pidFile};`,
    `error_log ${paths.errorLog} notice;`,
    `events { worker_connections ${sizing.workerConnections}; }`,
    "stream {",
    `    include ${paths.streamDir}/${settings.prefix}*.conf;`,
    "}",
    "",
  ].join("\n");
}
