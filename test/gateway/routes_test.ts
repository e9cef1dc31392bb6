/**
 * The route table at its seam: what a Host finds (with or without a port,
 * and for the odd Host values a browser can send), what registration may
 * take, and what a removal leaves behind.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { normalizeHost, parseDomainPattern } from "../../src/gateway/domains.ts";
import { RoutePool } from "../../src/gateway/pool.ts";
import { RouteTable, type Route } from "../../src/gateway/routes.ts";
import { createStats } from "../../src/gateway/stats.ts";

const PATTERNS = [parseDomainPattern("{key}-{user}.example.org"), parseDomainPattern("{key}-{user}.localhost:8888")];

/** A route of `user` under `key` (and service name `name`), with the host names the table renders for it. */
function route(table: RouteTable, key: string, user: string, name = key): Route {
  return {
    key, user, name, uid: 1000, socketPath: `/run/x/${user}-${key}/socket`, directory: `/run/x/${user}-${key}`,
    authHash: Buffer.alloc(64), hosts: table.hostsOf(key, user), created: Date.now(), lastActivity: 0,
    pool: new RoutePool(`/run/x/${user}-${key}/socket`, createStats()),
  };
}

test("RouteTable.lookup() finds a route by each of its host names as a browser may spell them, and nothing for others", () => {
  const table = new RouteTable(PATTERNS);
  const lab = route(table, "lab", "ann");
  table.add(lab);
  assert.deepEqual(lab.hosts, ["lab-ann.example.org", "lab-ann.localhost:8888"]);
  // The front end looks up the Host as normalizeHost() leaves it.
  const find = (raw: string): Route | undefined => {
    const host = normalizeHost(raw);
    return host === null ? undefined : table.lookup(host);
  };
  for (const host of ["lab-ann.example.org", "LAB-Ann.Example.ORG", "lab-ann.example.org.", "lab-ann.example.org:443", "lab-ann.example.org.:443",
    "lab-ann.localhost:8888"]) {
    assert.equal(find(host), lab, JSON.stringify(host));
  }
  for (const host of ["lab-ann.localhost:9999", "lab-ann.localhost", "ann-lab.example.org", "lab-ann", "x.lab-ann.example.org", "lab-ann.example.org:",
    "lab-ann.example.org:443:443", "[::1]", "[::1]:443", "lab-ann.example.org/x", "lab-ann.example.org@x", ""]) {
    assert.equal(find(host), undefined, JSON.stringify(host));
  }
});

test("RouteTable.add() refuses a key or name the user holds and a host another route renders to, changing nothing", () => {
  const table = new RouteTable(PATTERNS);
  const lab = route(table, "lab", "ann");
  table.add(lab);
  assert.throws(() => table.add(route(table, "lab", "ann", "other")), (err: NodeJS.ErrnoException) => err.code === "CONDUCTOR_ERR_KEY_TAKEN");
  assert.throws(() => table.add(route(table, "lab2", "ann", "lab")), /already has a live service named 'lab'/);
  // "a-b" of "c" and "a" of "b-c" render to the same host: the second is refused.
  table.add(route(table, "a-b", "c"));
  assert.throws(() => table.add(route(table, "a", "b-c")), (err: NodeJS.ErrnoException) => err.code === "CONDUCTOR_ERR_HOST_TAKEN");
  assert.equal(table.size, 2);
  assert.equal(table.countOf("ann"), 1);
  assert.equal(table.lookup("a-b-c.example.org")?.key, "a-b");
});

test("RouteTable.add() with `replacing` swaps a route in one step; remove() of a route no longer in the table is a no-op", () => {
  const table = new RouteTable(PATTERNS);
  const old = route(table, "lab", "ann");
  table.add(old);
  const replacement = route(table, "lab", "ann");
  table.add(replacement, old);
  assert.equal(table.lookup("lab-ann.example.org"), replacement);
  assert.equal(table.size, 1);
  assert.equal(table.countOf("ann"), 1);
  assert.equal(table.remove(old), false, "the replaced route's late removal leaves its successor alone");
  assert.equal(table.lookup("lab-ann.example.org"), replacement);
  assert.throws(() => table.setPatterns(PATTERNS), /routes exist/, "the patterns stay while routes rendered with them exist");
  assert.equal(table.remove(replacement), true);
  assert.equal(table.size, 0);
  assert.equal(table.countOf("ann"), 0);
  table.setPatterns(PATTERNS.slice(1));
  assert.deepEqual(table.hostsOf("lab", "ann"), ["lab-ann.localhost:8888"]);
});

test("RouteTable remembers the hosts of a route removed without a goodbye for its grace, with or without a port", () => {
  const table = new RouteTable(PATTERNS);
  const lab = route(table, "lab", "ann");
  table.add(lab);
  table.remove(lab, 60_000);
  assert.equal(table.lookup("lab-ann.example.org"), undefined);
  assert.equal(table.recentlyGone("lab-ann.example.org"), true);
  assert.equal(table.recentlyGone("lab-ann.example.org:443"), true);
  assert.equal(table.recentlyGone("other-ann.example.org"), false);
  table.add(route(table, "lab", "ann"));
  assert.equal(table.recentlyGone("lab-ann.example.org"), false, "a route that comes back is no longer gone");
  const quiet = route(table, "quiet", "ann");
  table.add(quiet);
  table.remove(quiet);
  assert.equal(table.recentlyGone("quiet-ann.example.org"), false, "a goodbye leaves no grace");
});
