import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_CONTROL_PATH, parseDestination } from "../../src/ssh/destination.ts";

test("parseDestination() reads [user@]host[:port][/path] as the original client does", () => {
  assert.deepEqual(parseDestination("gw"), { user: null, host: "gw", port: null, controlPath: DEFAULT_CONTROL_PATH });
  assert.deepEqual(parseDestination("ann@gw.example.org:2222/run/c/client"), { user: "ann", host: "gw.example.org", port: 2222, controlPath: "/run/c/client" });
  assert.deepEqual(parseDestination("localhost/tmp/run/client"), { user: null, host: "localhost", port: null, controlPath: "/tmp/run/client" });
  assert.deepEqual(parseDestination("[::1]:22"), { user: null, host: "::1", port: 22, controlPath: DEFAULT_CONTROL_PATH });
});

test("parseDestination() refuses option-like hosts, bad ports and unsafe paths", () => {
  for (const bad of ["-oProxyCommand=x", "", "gw:0", "gw:99999", "gw:port", "gw/run/a b", "gw/run/x;rm", "a b@gw", "gw/run/x:y"]) {
    assert.throws(() => parseDestination(bad), { code: "CONDUCTOR_ERR_USAGE" }, bad);
  }
});
