import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthMemo, authCookie, authorized, cookiesWithoutAuth, isCookieSafe, safeNext, tokenMatches } from "../../src/gateway/auth.ts";
import { isRefusal, parseRequestHead, type RequestHead } from "../../src/gateway/request_head.ts";
import type { Route } from "../../src/gateway/routes.ts";
import { hashToken } from "../../src/lib/token.ts";

/** A route that only has the token hash the cookie check reads. */
function routeOf(token: string): Route {
  return { authHash: Buffer.from(hashToken(token), "hex") } as Route;
}

/** A request head with these Cookie field values. */
function withCookies(...cookies: string[]): RequestHead {
  const head = parseRequestHead(["GET / HTTP/1.1", "Host: a", ...cookies.map((c) => `Cookie: ${c}`)].join("\r\n"));
  assert.ok(!isRefusal(head));
  return head;
}

/** Whether a request with these Cookie field values is authorized for the route of `token`, on a new connection. */
function allows(token: string, ...cookies: string[]): boolean {
  return authorized(withCookies(...cookies), routeOf(token), new AuthMemo());
}

/** cookiesWithoutAuth() over a whole value. */
function rest(value: string): string {
  return cookiesWithoutAuth(value, 0, value.length, "");
}

test("authorized() finds the route's token among every authorization cookie, quoted or not, in any Cookie field", () => {
  assert.equal(allows("tok", "a=1; authorization=tok; b=\"x y\""), true);
  assert.equal(allows("quoted", 'authorization="quoted"'), true);
  assert.equal(allows("two", "authorization=one;authorization=two;;"), true, "a sibling site's cookie of the same name does not hide ours");
  assert.equal(allows("two", "authorization=one", "x=1;  authorization = two "), true);
  assert.equal(allows("tok", "authorizationx=tok; xauthorization=tok; Authorization=tok"), false, "the name must be exactly authorization");
  assert.equal(allows("tok", "authorization=tok2"), false);
  assert.equal(allows("tok"), false, "no cookie");
});

test("authorized() remembers the token a connection proved for a route, and proves another token or another route's again", () => {
  const memo = new AuthMemo();
  const route = routeOf("right-token");
  assert.equal(authorized(withCookies("authorization=right-token"), route, memo), true);
  assert.equal(memo.token, "right-token");
  assert.equal(authorized(withCookies("authorization=right-token"), route, memo), true, "the next request on the connection");
  assert.equal(authorized(withCookies("authorization=wrong-token"), route, memo), false, "a different cookie is checked, not taken from the memo");
  assert.equal(authorized(withCookies("authorization=right-token"), routeOf("new-token"), memo), false, "a replaced route (a new hash) is checked anew");
});

test("cookiesWithoutAuth() takes out every authorization cookie and keeps the rest in order", () => {
  assert.equal(rest("a=1; authorization=tok; b=\"x y\""), 'a=1; b="x y"');
  assert.equal(rest('authorization="quoted"'), "");
  assert.equal(rest("authorization=one;authorization=two;;"), "");
  assert.equal(rest("authorizationx=1;xauthorization=2 ;  c"), "authorizationx=1; xauthorization=2; c");
  assert.equal(cookiesWithoutAuth("Cookie: a=1; authorization=t\r\n", 8, 29, "z=0"), "z=0; a=1", "a range of a head, appended to what came before");
});

test("tokenMatches() accepts the token and refuses others", () => {
  const hash = Buffer.from(hashToken("s3cret"), "hex");
  assert.equal(tokenMatches("s3cret", hash), true);
  assert.equal(tokenMatches("s3cret ", hash), false);
  assert.equal(tokenMatches("", hash), false);
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
