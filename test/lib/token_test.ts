import assert from "node:assert/strict";
import { test } from "node:test";
import { generateToken, hashToken, tokenProblem } from "../../src/lib/token.ts";

test("hashToken() equals Python's hashlib.blake2b(b'test').hexdigest()", () => {
  assert.equal(hashToken("test"),
    "a71079d42853dea26e453004338670a53814b78137ffbed07603a41d76a483aa9bc33b582f77d30a65e6f29a896c0411f38312e1d66e0bf16386c86a89bea572");
});

test("generateToken() gives 32 characters of [a-z0-9], different each time", () => {
  const a = generateToken();
  assert.match(a, /^[a-z0-9]{32}$/);
  assert.notEqual(a, generateToken());
});

test("tokenProblem() refuses a token that is empty, short, or that a cookie cannot carry", () => {
  assert.equal(tokenProblem(generateToken()), null);
  assert.equal(tokenProblem("a".repeat(16)), null);
  assert.match(tokenProblem("")!, /is set but empty/);
  assert.match(tokenProblem("a".repeat(15))!, /has 15 characters, too few/);
  assert.match(tokenProblem("a".repeat(16) + ";b")!, /characters a browser cookie cannot carry/);
});
