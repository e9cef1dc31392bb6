import assert from "node:assert/strict";
import { test } from "node:test";
import { normalizeHost, parseDomainPattern } from "../../src/gateway/domains.ts";
import { RouteTable, type Route } from "../../src/gateway/routes.ts";

test("parseDomainPattern() renders key and user in either order", () => {
  assert.equal(parseDomainPattern("{key}-{user}.Example.org").render("lab", "ann"), "lab-ann.example.org");
  assert.equal(parseDomainPattern("{user}.{key}.localhost:8888").render("lab", "ann"), "ann.lab.localhost:8888");
});

test("parseDomainPattern() refuses patterns without both placeholders or with odd characters", () => {
  assert.throws(() => parseDomainPattern("{key}.example.org"), /\{key\} and \{user\} once each/);
  assert.throws(() => parseDomainPattern("{key}-{key}-{user}.org"), /once each/);
  assert.throws(() => parseDomainPattern("{key}-{user}.org/path"), /only letters/);
});

test("normalizeHost() lowercases and refuses paths, userinfo and spaces", () => {
  assert.equal(normalizeHost("Lab-Ann.Example.org:8888"), "lab-ann.example.org:8888");
  assert.equal(normalizeHost("lab-ann.example.org."), "lab-ann.example.org");
  assert.equal(normalizeHost("[::1]:80"), "[::1]:80");
  for (const bad of ["a/b", "u@a", "a b", "", "a:99999999", "a\tb"]) assert.equal(normalizeHost(bad), null, bad);
});

function route(key: string, user: string, table: RouteTable): Route {
  return { key, user, name: key, uid: 1, socketPath: "/x", directory: "/d", authHash: Buffer.alloc(64), hosts: table.hostsOf(key, user), created: 0, lastActivity: 0, pool: null as never };
}

test("RouteTable.lookup() resolves a Host that several splits could match to the route that exists", () => {
  const table = new RouteTable([parseDomainPattern("{key}-{user}.example.org")]);
  table.add(route("my-lab", "ann", table));
  table.add(route("lab", "bob-smith", table));
  assert.equal(table.lookup("my-lab-ann.example.org")?.user, "ann");
  assert.equal(table.lookup("lab-bob-smith.example.org")?.key, "lab");
  assert.equal(table.lookup("my-lab-ann.example.org:443")?.key, "my-lab", "a port not in the pattern is ignored");
  assert.equal(table.lookup("my-lab-bob.example.org"), undefined);
});

test("RouteTable.add() refuses a taken key and a taken host name, and replaces only what it is told", () => {
  const table = new RouteTable([parseDomainPattern("{key}-{user}.example.org")]);
  const first = route("a-b", "c", table);
  table.add(first);
  assert.throws(() => table.add(route("a-b", "c", table)), { code: "CONDUCTOR_ERR_KEY_TAKEN" });
  assert.throws(() => table.add(route("a", "b-c", table)), { code: "CONDUCTOR_ERR_HOST_TAKEN" });
  const second = route("a-b", "c", table);
  table.add(second, first);
  assert.equal(table.lookup("a-b-c.example.org"), second);
  assert.equal(table.remove(first), false, "removing a replaced route changes nothing");
  assert.equal(table.countOf("c"), 1);
  assert.equal(table.remove(second), true);
  assert.equal(table.size, 0);
});

test("RouteTable: a route removed with a grace period is recently gone until it expires or comes back; expired names are swept", async () => {
  const table = new RouteTable([parseDomainPattern("{key}-{user}.example.org")]);
  const lab = route("lab", "ann", table);
  table.add(lab);
  table.remove(lab, 40);
  assert.equal(table.lookup("lab-ann.example.org"), undefined);
  assert.equal(table.recentlyGone("lab-ann.example.org"), true);
  assert.equal(table.recentlyGone("lab-ann.example.org:443"), true, "with a port too");
  assert.equal(table.recentlyGone("web-ann.example.org"), false);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(table.recentlyGone("lab-ann.example.org"), false, "expired");

  table.add(lab);
  table.remove(lab, 60_000);
  table.add(route("lab", "ann", table));
  assert.equal(table.recentlyGone("lab-ann.example.org"), false, "a route that came back is not gone");

  // A user churning keys: 10,000 names gone, each for a moment; the expired ones do not pile up.
  let most = 0;
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 1000; i++) table.markGone([`k${round}-${i}-ann.example.org`], 1);
    most = Math.max(most, table.goneCount);
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(most <= 3048, `expired names are swept as the map grows: up to ${most} held`);
});
