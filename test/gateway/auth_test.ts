import assert from "node:assert/strict";
import { test } from "node:test";
import { authCookie, isCookieSafe, safeNext, splitCookies } from "../../src/gateway/auth.ts";

test("splitCookies() takes out every authorization cookie and keeps the rest in order", () => {
  assert.deepEqual(splitCookies("a=1; authorization=tok; b=\"x y\""), { tokens: ["tok"], rest: 'a=1; b="x y"' });
  assert.deepEqual(splitCookies('authorization="quoted"'), { tokens: ["quoted"], rest: "" });
  assert.deepEqual(splitCookies("authorization=one;authorization=two;;"), { tokens: ["one", "two"], rest: "" });
  assert.deepEqual(splitCookies("authorizationx=1; xauthorization=2"), { tokens: [], rest: "authorizationx=1; xauthorization=2" });
});

test("safeNext() allows same-origin paths only", () => {
  assert.equal(safeNext("/lab?x=1"), "/lab?x=1");
  assert.equal(safeNext(null), "/");
  for (const bad of ["//evil", "/\\evil", "http://evil/", "evil", "/a b", "/\u00e9", "/\t/evil"]) assert.equal(safeNext(bad), "/", bad);
});

test("authCookie() is HttpOnly, Path=/, SameSite=Lax and Secure only over TLS", () => {
  assert.equal(authCookie("t", false), "authorization=t; HttpOnly; Path=/; SameSite=Lax");
  assert.equal(authCookie("t", true), "authorization=t; HttpOnly; Path=/; SameSite=Lax; Secure");
  assert.equal(isCookieSafe("abc123"), true);
  assert.equal(isCookieSafe("a;b"), false);
  assert.equal(isCookieSafe(""), false);
});
