/**
 * The route table alone, for the benchmark: ns per Host lookup with 1 route
 * and with N, and heap bytes per route (Route, host names, index entries, an
 * unused pool). Run with `node --expose-gc route_table.js N`; prints JSON.
 *
 * @module
 */
import { parseDomainPattern } from "../../src/gateway/domains.ts";
import { RoutePool } from "../../src/gateway/pool.ts";
import { RouteTable, type Route } from "../../src/gateway/routes.ts";
import { createStats } from "../../src/gateway/stats.ts";

const n = Number(process.argv[2] ?? "10000");
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with node --expose-gc");
const stats = createStats();

function fill(table: RouteTable, count: number): void {
  for (let i = 0; i < count; i++) {
    const key = `r${i}`;
    const user = `user${i % 97}`;
    const path = `/run/conductor/sockets/${i.toString(16).padStart(32, "0")}/socket`;
    const route: Route = {
      key, user, name: key, uid: 1000 + (i % 97), socketPath: path, directory: path.slice(0, -7),
      authHash: Buffer.from(i.toString(16).padStart(128, "0"), "hex"),
      hosts: table.hostsOf(key, user), created: Date.now(), lastActivity: Date.now(),
      pool: new RoutePool(path, stats),
    };
    table.add(route);
  }
}

/** ns per lookup of existing hosts, over many lookups. */
function lookupNs(table: RouteTable, count: number): number {
  const hosts = Array.from({ length: 1000 }, (_, i) => `r${i % count}-user${(i % count) % 97}.example.org`);
  let found = 0;
  for (let i = 0; i < 200_000; i++) if (table.lookup(hosts[i % 1000]) !== undefined) found++;
  const start = process.hrtime.bigint();
  for (let i = 0; i < 2_000_000; i++) if (table.lookup(hosts[i % 1000]) !== undefined) found++;
  const ns = Number(process.hrtime.bigint() - start) / 2_000_000;
  if (found === 0) throw new Error("no route found");
  return ns;
}

const patterns = [parseDomainPattern("{key}-{user}.example.org")];
const small = new RouteTable(patterns);
fill(small, 1);
const oneNs = lookupNs(small, 1);
gc();
const before = process.memoryUsage().heapUsed;
const big = new RouteTable(patterns);
fill(big, n);
gc();
const after = process.memoryUsage().heapUsed;
const manyNs = lookupNs(big, n);
process.stdout.write(JSON.stringify({ routes: n, lookupNsOne: oneNs, lookupNsMany: manyNs, bytesPerRoute: (after - before) / n }) + "\n");
