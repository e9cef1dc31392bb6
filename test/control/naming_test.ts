import assert from "node:assert/strict";
import { test } from "node:test";
import { checkHostOwnership, checkUserName } from "../../src/control/naming.ts";
import { parseDomainPattern } from "../../src/gateway/domains.ts";
import { account } from "../helpers/accounts.ts";
import { needsRoot } from "../helpers/env.ts";

test("checkUserName() refuses names that cannot stand in a host name", () => {
  checkUserName("jean-luc");
  checkUserName("ann_2");
  for (const bad of ["a.b", "-x", "x-", "Ann", "a b"]) assert.throws(() => checkUserName(bad), /cannot be part of a host name/, bad);
});

test("parseDomainPattern().split() lists every reading of a host", () => {
  const p = parseDomainPattern("{key}-{user}.example.org");
  assert.deepEqual(p.split("app-jean-luc.example.org"), [{ key: "app", user: "jean-luc" }, { key: "app-jean", user: "luc" }]);
  assert.deepEqual(parseDomainPattern("{user}.{key}.example.org").split("ann.lab.example.org"), [{ key: "lab", user: "ann" }]);
  assert.deepEqual(p.split("other.org"), []);
});

test("checkHostOwnership() gives a host that reads two ways to the existing user with the longer name", { skip: needsRoot }, async () => {
  account("jean-luc");
  account("luc");
  const patterns = [parseDomainPattern("{key}-{user}.example.org")];
  await assert.rejects(checkHostOwnership("app-jean", "luc", patterns), /app-jean-luc\.example\.org reads as key 'app' of user jean-luc, so it is theirs/);
  await checkHostOwnership("app", "jean-luc", patterns);
  await checkHostOwnership("app-nobody", "luc", patterns);
});
