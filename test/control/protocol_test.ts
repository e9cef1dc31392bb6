import assert from "node:assert/strict";
import { test } from "node:test";
import { hashToken } from "../../src/lib/token.ts";
import { decodeLine, encodeLine, normalizeKey, parseBanner, parseRegister, parseReply } from "../../src/control/protocol.ts";

test("encodeLine() writes what Python's json.dumps writes", () => {
  assert.equal(encodeLine({ status: "ok", directory: "/x/é" }), '{"status": "ok", "directory": "/x/\\u00e9"}\n');
  assert.equal(encodeLine({ status: "ok", urls: ["a", "b"] }), '{"status": "ok", "urls": ["a", "b"]}\n');
  assert.deepEqual(decodeLine(encodeLine({ status: "ok", directory: "/x/é" })), { status: "ok", directory: "/x/é" });
});

test("decodeLine() refuses non-objects with a message", () => {
  assert.throws(() => decodeLine("[1]"), /expected a JSON object/);
  assert.throws(() => decodeLine("{"), /not JSON/);
});

test("normalizeKey() lowercases, defaults to 'none' and refuses what cannot be a host label", () => {
  assert.equal(normalizeKey("Lab-1"), "lab-1");
  assert.equal(normalizeKey(undefined), "none");
  assert.equal(normalizeKey(""), "none");
  for (const bad of ["-x", "x-", "a_b", "a.b", "a/b", "x".repeat(64), 5]) {
    assert.throws(() => normalizeKey(bad), { code: "CONDUCTOR_ERR_KEY_INVALID" }, String(bad));
  }
});

test("parseRegister() needs a 128-digit hex auth", () => {
  const auth = "A".repeat(128);
  assert.deepEqual(parseRegister({ auth, key: "K" }), { auth: "a".repeat(128), key: "k", name: "k" });
  assert.deepEqual(parseRegister({ auth, key: "K", name: "Lab" }), { auth: "a".repeat(128), key: "k", name: "lab" });
  assert.throws(() => parseRegister({ auth, name: "a b" }), /Cannot use service name/);
  assert.throws(() => parseRegister({ auth: "plain-token" }), /128 hex digits/);
  assert.throws(() => parseRegister({ auth: hashToken("") }), /its token is empty/);
});

test("parseBanner() and parseReply() read the server's lines", () => {
  assert.deepEqual(parseBanner({ status: "ok", directory: "/run/x" }), { status: "ok", directory: "/run/x" });
  assert.throws(() => parseBanner({ status: "error", reason: "busy" }), /busy/);
  assert.deepEqual(parseReply({ status: "ok", urls: ["a"] }), { status: "ok", urls: ["a"], scheme: "https", activity: false }, "an original server says no scheme and reports no activity");
  assert.deepEqual(parseReply({ status: "ok", urls: ["a"], scheme: "http", activity: true }), { status: "ok", urls: ["a"], scheme: "http", activity: true });
  assert.deepEqual(parseReply({ status: "error", reason: "taken" }), { status: "error", reason: "taken" }, "an original server gives no code");
  assert.deepEqual(parseReply({ status: "error", reason: "taken", code: "CONDUCTOR_ERR_KEY_TAKEN" }), { status: "error", reason: "taken", code: "CONDUCTOR_ERR_KEY_TAKEN" });
  assert.equal(parseReply({ status: "weird" }).status, "error");
});
