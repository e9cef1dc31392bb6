/**
 * The client's idle watch, with mocked timers and clock: it fires once the
 * limit passes without activity, reports push it back, a pause stops it, and
 * a restart after a pause counts afresh; a limit past setTimeout's range works.
 */
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { IdleWatch } from "../../src/client/idle.ts";

test("IdleWatch: fires once after the limit without activity; activity reports push it back; pause stops it", (t) => {
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  t.after(() => mock.timers.reset());
  const fired: number[] = [];
  const watch = new IdleWatch(10_000, (seconds) => fired.push(seconds));
  watch.activity(0);
  mock.timers.tick(20_000);
  assert.deepEqual(fired, [], "nothing counts before start()");
  watch.start();
  mock.timers.tick(9_000);
  watch.activity(2); // browsers used the app 2 s ago: 3 s of idle time are forgiven... of 9
  mock.timers.tick(2_000);
  assert.deepEqual(fired, [], "11 s after start, 4 s after the reported use");
  mock.timers.tick(6_000);
  assert.deepEqual(fired, [10], "10 s after the reported use");
  mock.timers.tick(60_000);
  watch.activity(0);
  assert.deepEqual(fired, [10], "only once");

  const paused: number[] = [];
  const other = new IdleWatch(10_000, (s) => paused.push(s));
  other.start();
  mock.timers.tick(5_000);
  other.pause();
  mock.timers.tick(60_000);
  assert.deepEqual(paused, [], "a paused watch does not fire");
  other.start();
  mock.timers.tick(9_999);
  assert.deepEqual(paused, [], "a restart counts from its own moment");
  mock.timers.tick(1);
  assert.deepEqual(paused, [10]);
});

test("IdleWatch: a limit beyond setTimeout's range (4w) is waited for in steps, without Node's overflow warning", async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => { warnings.push(w.name); };
  process.on("warning", onWarning);
  const watch = new IdleWatch(28 * 86_400_000, () => assert.fail("fired"));
  watch.start();
  // Node warns (on the next tick) when a delay overflows, and then fires the timer at once.
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 5));
  watch.stop();
  process.off("warning", onWarning);
  assert.deepEqual(warnings.filter((n) => n === "TimeoutOverflowWarning"), []);
});
