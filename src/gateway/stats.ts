/**
 * Gateway counters, served as JSON at `/_conductor/status` (the original's
 * field names) and in the Prometheus text format at `/_conductor/metrics`.
 *
 * @module
 */

/** Counters of the HTTP front end; plain numbers, bumped on the hot path. */
export interface Stats {
  /** Browser (or reverse proxy) connections accepted. */
  connectionTotal: number;
  /** Connections refused with 503 for being beyond --max-connections or --max-connections-per-address. */
  connectionRefused: number;
  /** Requests received (including websocket upgrades). */
  requestTotal: number;
  /** Requests in progress. */
  requestActive: number;
  /** Requests refused with 403. */
  unauthorized: number;
  /** Requests for a host with no route. */
  noroute: number;
  /** Requests whose app socket did not answer (502/504). */
  broken: number;
  /** Requests answered 503 because their app had all the connections it may (--max-app-connections) and the queue was full or too slow. */
  appBusy: number;
  /** Requests refused as malformed (400, 408, 413, 431, 501, 505). */
  badRequest: number;
  /** Websocket (upgrade) tunnels opened. */
  upgradeTotal: number;
  /** Websocket tunnels open now. */
  upgradeActive: number;
  /** New connections opened to app sockets. */
  upstreamConnects: number;
  /** Requests served on a pooled (reused) app connection. */
  upstreamReuses: number;
  /** Connections to app sockets open now, idle or busy (websocket tunnels not counted). */
  upstreamOpen: number;
}

/** Fresh zeroed counters. */
export function createStats(): Stats {
  return {
    connectionTotal: 0, connectionRefused: 0, requestTotal: 0, requestActive: 0, unauthorized: 0, noroute: 0, broken: 0, appBusy: 0,
    badRequest: 0, upgradeTotal: 0, upgradeActive: 0, upstreamConnects: 0, upstreamReuses: 0, upstreamOpen: 0,
  };
}

/** Figures that are read, not counted: routes and process facts. */
export interface Gauges {
  routesTotal: number;
  controlConnections: number;
  /** Browser (or reverse proxy) connections open now. */
  connectionActive: number;
  /** Requests waiting for a connection to their app, at its cap. */
  appWaiting: number;
  startedAt: number;
}

/** The `/_conductor/status` document: the original's fields first, then ours. */
export function statusJson(stats: Stats, gauges: Gauges, version: string): string {
  return JSON.stringify({
    requestTotal: stats.requestTotal,
    requestActive: stats.requestActive,
    unauthorized: stats.unauthorized,
    noroute: stats.noroute,
    broken: stats.broken,
    routesTotal: gauges.routesTotal,
    appBusy: stats.appBusy,
    appWaiting: gauges.appWaiting,
    badRequest: stats.badRequest,
    upgradeTotal: stats.upgradeTotal,
    upgradeActive: stats.upgradeActive,
    upstreamConnects: stats.upstreamConnects,
    upstreamReuses: stats.upstreamReuses,
    upstreamOpen: stats.upstreamOpen,
    connectionTotal: stats.connectionTotal,
    connectionRefused: stats.connectionRefused,
    connectionActive: gauges.connectionActive,
    controlConnections: gauges.controlConnections,
    uptimeSeconds: Math.round((Date.now() - gauges.startedAt) / 1000),
    version,
  }) + "\n";
}

const METRICS: ReadonlyArray<[keyof Stats, "counter" | "gauge", string]> = [
  ["connectionTotal", "counter", "Connections accepted from browsers or the reverse proxy"],
  ["connectionRefused", "counter", "Connections refused with 503 beyond the connection caps"],
  ["requestTotal", "counter", "HTTP requests received, including websocket upgrades"],
  ["requestActive", "gauge", "HTTP requests in progress"],
  ["unauthorized", "counter", "Requests refused for a missing or wrong authorization cookie"],
  ["noroute", "counter", "Requests for a host without a route"],
  ["broken", "counter", "Requests whose app socket did not answer"],
  ["appBusy", "counter", "Requests answered 503 because their app had all the connections it may"],
  ["badRequest", "counter", "Requests refused as malformed"],
  ["upgradeTotal", "counter", "Websocket tunnels opened"],
  ["upgradeActive", "gauge", "Websocket tunnels open"],
  ["upstreamConnects", "counter", "Connections opened to app sockets"],
  ["upstreamReuses", "counter", "Requests served on a reused app connection"],
  ["upstreamOpen", "gauge", "Connections to app sockets open, idle or busy, websocket tunnels not counted"],
];

const GAUGES: ReadonlyArray<[string, (g: Gauges) => number, string]> = [
  ["conductor_routes", (g) => g.routesTotal, "Routes registered"],
  ["conductor_control_connections", (g) => g.controlConnections, "Open control-socket connections"],
  ["conductor_connection_active", (g) => g.connectionActive, "Open connections from browsers or the reverse proxy"],
  ["conductor_app_waiting", (g) => g.appWaiting, "Requests waiting for a connection to their app, at its cap"],
  ["conductor_start_time_seconds", (g) => Math.floor(g.startedAt / 1000), "Start time of the process since the epoch"],
];

/** The `/_conductor/metrics` document in the Prometheus text exposition format. */
export function metricsText(stats: Stats, gauges: Gauges): string {
  let out = "";
  for (const [field, type, help] of METRICS) {
    const name = "conductor_" + snake(field) + (type === "counter" ? "_total" : "");
    out += `# HELP ${name} ${help}.\n# TYPE ${name} ${type}\n${name} ${stats[field]}\n`;
  }
  for (const [name, read, help] of GAUGES) out += `# HELP ${name} ${help}.\n# TYPE ${name} gauge\n${name} ${read(gauges)}\n`;
  return out;
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase()).replace(/_total$/, "");
}
