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
}

/** Fresh zeroed counters. */
export function createStats(): Stats {
  return {
    connectionTotal: 0, requestTotal: 0, requestActive: 0, unauthorized: 0, noroute: 0, broken: 0,
    badRequest: 0, upgradeTotal: 0, upgradeActive: 0, upstreamConnects: 0, upstreamReuses: 0,
  };
}

/** Figures that are read, not counted: routes and process facts. */
export interface Gauges {
  routesTotal: number;
  controlConnections: number;
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
    badRequest: stats.badRequest,
    upgradeTotal: stats.upgradeTotal,
    upgradeActive: stats.upgradeActive,
    upstreamConnects: stats.upstreamConnects,
    upstreamReuses: stats.upstreamReuses,
    connectionTotal: stats.connectionTotal,
    controlConnections: gauges.controlConnections,
    uptimeSeconds: Math.round((Date.now() - gauges.startedAt) / 1000),
    version,
  }) + "\n";
}

const METRICS: ReadonlyArray<[keyof Stats, "counter" | "gauge", string]> = [
  ["connectionTotal", "counter", "Connections accepted from browsers or the reverse proxy"],
  ["requestTotal", "counter", "HTTP requests received, including websocket upgrades"],
  ["requestActive", "gauge", "HTTP requests in progress"],
  ["unauthorized", "counter", "Requests refused for a missing or wrong authorization cookie"],
  ["noroute", "counter", "Requests for a host without a route"],
  ["broken", "counter", "Requests whose app socket did not answer"],
  ["badRequest", "counter", "Requests refused as malformed"],
  ["upgradeTotal", "counter", "Websocket tunnels opened"],
  ["upgradeActive", "gauge", "Websocket tunnels open"],
  ["upstreamConnects", "counter", "Connections opened to app sockets"],
  ["upstreamReuses", "counter", "Requests served on a reused app connection"],
];

/** The `/_conductor/metrics` document in the Prometheus text exposition format. */
export function metricsText(stats: Stats, gauges: Gauges): string {
  let out = "";
  for (const [field, type, help] of METRICS) {
    const name = "conductor_" + snake(field) + (type === "counter" ? "_total" : "");
    out += `# HELP ${name} ${help}.\n# TYPE ${name} ${type}\n${name} ${stats[field]}\n`;
  }
  out += "# HELP conductor_routes Routes registered.\n# TYPE conductor_routes gauge\n" +
    `conductor_routes ${gauges.routesTotal}\n`;
  out += "# HELP conductor_control_connections Open control-socket connections.\n# TYPE conductor_control_connections gauge\n" +
    `conductor_control_connections ${gauges.controlConnections}\n`;
  out += "# HELP conductor_start_time_seconds Start time of the process since the epoch.\n# TYPE conductor_start_time_seconds gauge\n" +
    `conductor_start_time_seconds ${Math.floor(gauges.startedAt / 1000)}\n`;
  return out;
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase()).replace(/_total$/, "");
}
