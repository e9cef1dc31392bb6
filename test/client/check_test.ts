import assert from "node:assert/strict";
import { test } from "node:test";
import { describeBanner } from "../../src/client/check.ts";

test("describeBanner() prints the gateway's version and domains when its banner tells them, and says so when it does not", () => {
  assert.deepEqual(describeBanner({ status: "ok", directory: "/run/conductor/sockets/x", version: "0.2.0", domains: ["{key}-{user}.apps.example.org", "{key}.{user}.example.org"] }), [
    ["banner", "ok, directory /run/conductor/sockets/x"],
    ["gateway", "conductor-server 0.2.0"],
    ["domains", "{key}-{user}.apps.example.org {key}.{user}.example.org"],
  ]);
  assert.deepEqual(describeBanner({ status: "ok", directory: "/run/conductor/sockets/x" }).slice(1), [
    ["gateway", "version not told (its banner does not say)"],
    ["domains", "not told (its banner does not say)"],
  ]);
});
