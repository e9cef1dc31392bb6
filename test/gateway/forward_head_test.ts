/**
 * What the gateway believes about how the browser came, and what it lets the
 * app believe: X-Forwarded-*, Forwarded and X-Real-IP count only from a
 * trusted reverse proxy.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { browserUsedTls } from "../../src/gateway/auth.ts";
import { buildForwardHead, forwardedFacts } from "../../src/gateway/forward_head.ts";
import { isRefusal, parseRequestHead, type RequestHead } from "../../src/gateway/request_head.ts";

function head(...fields: string[]): RequestHead {
  const parsed = parseRequestHead(["GET / HTTP/1.1", "Host: lab-ann.example.org", ...fields].join("\r\n"));
  assert.ok(!isRefusal(parsed));
  return parsed;
}

test("browserUsedTls() trusts X-Forwarded-Proto only behind a trusted proxy", () => {
  const spoofed = head("X-Forwarded-Proto: https");
  assert.equal(browserUsedTls(spoofed, false, false), false, "a browser cannot claim TLS to a plain-HTTP gateway");
  assert.equal(browserUsedTls(spoofed, false, true), true, "the proxy in front says the browser used TLS");
  assert.equal(browserUsedTls(head("X-Forwarded-Proto: HTTPS"), false, true), true);
  assert.equal(browserUsedTls(head("X-Forwarded-Proto: http"), false, true), false);
  assert.equal(browserUsedTls(head(), false, true), false, "no field, no TLS");
  assert.equal(browserUsedTls(head("X-Forwarded-Proto: http"), true, false), true, "the gateway's own TLS is TLS");
});

test("buildForwardHead() passes a browser's own proxy claims to the app only from a trusted proxy", () => {
  const request = head("Forwarded: for=10.0.0.1;proto=https", "X-Real-IP: 10.0.0.1", "X-Forwarded-For: 10.0.0.2", "X-Forwarded-Proto: https");
  const direct = buildForwardHead(request, forwardedFacts("192.0.2.7", "http", false), false);
  assert.doesNotMatch(direct, /10\.0\.0\./, "nothing the browser claimed reaches the app");
  assert.match(direct, /\r\nX-Forwarded-For: 192\.0\.2\.7\r\n/);
  assert.match(direct, /\r\nX-Forwarded-Proto: http\r\n/);
  const proxied = buildForwardHead(request, forwardedFacts(null, "http", true), false);
  assert.match(proxied, /\r\nForwarded: for=10\.0\.0\.1;proto=https\r\n/);
  assert.match(proxied, /\r\nX-Real-IP: 10\.0\.0\.1\r\n/);
  assert.match(proxied, /\r\nX-Forwarded-For: 10\.0\.0\.2\r\n/);
  assert.match(proxied, /\r\nX-Forwarded-Proto: https\r\n/);
});
