/**
 * Durations as sshd_config writes them, for --idle-timeout and --max-idle.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseDuration } from "../../src/lib/duration.ts";

test("parseDuration(): sshd_config forms, summed; anything else is refused with the forms", () => {
  assert.equal(parseDuration("90", "--x"), 90);
  assert.equal(parseDuration("30s", "--x"), 30);
  assert.equal(parseDuration("15m", "--x"), 900);
  assert.equal(parseDuration("2h", "--x"), 7200);
  assert.equal(parseDuration("1h30m", "--x"), 5400);
  assert.equal(parseDuration("1d", "--x"), 86_400);
  assert.equal(parseDuration("1W", "--x"), 604_800);
  for (const bad of ["", "0", "0s", "-5", "1.5h", "5 m", "m", "10y", "1h 30m", "99999999999999999999"]) {
    assert.throws(() => parseDuration(bad, "--idle-timeout"), /--idle-timeout takes a duration above zero, as in sshd_config: 90 \(seconds\), 30s, 15m, 2h, 1h30m; not '/, bad);
  }
});
