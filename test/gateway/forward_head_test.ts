/**
 * What the gateway believes about how the browser came: X-Forwarded-Proto
 * counts only from a trusted reverse proxy.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { browserUsedTls } from "../../src/gateway/forward_head.ts";
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
