/**
 * The client's idle watch, with mocked timers and clock: it fires once the
 * limit passes without activity, reports push it back, a pause stops it, and
 * a restart after a pause counts afresh; a limit past setTimeout's range works.
 */
import assert from "node:assert/strict";
import { mock, test, type TestContext } from "node:test";
import { IdleWatch } from "../../src/client/idle.ts";

/**
 * Mocks setTimeout and Date.now(), starting at `now`; the returned tick(ms) moves both, a millisecond at a time, so
 * that a timer sees the time it was due at. (Node before 20.11 mocks timers but not Date.)
 */
function mockClock(t: TestContext, now: number): (ms: number) => void {
  // The array form Node 18 takes (and 20 still does); @types/node knows only the object form of 20.11.
  mock.timers.enable(["setTimeout"] as unknown as Parameters<typeof mock.timers.enable>[0]);
  const clock = mock.method(Date, "now", () => now);
  t.after(() => {
    mock.timers.reset();
    clock.mock.restore();
  });
  return (ms) => {
    for (let i = 0; i < ms; i++) {
      now++;
      mock.timers.tick(1);
    }
  };
}

test("IdleWatch: fires once after the limit without activity; activity reports push it back; pause stops it", (t) => {
  const tick = mockClock(t, 1_000_000);
  const fired: number[] = [];
  const watch = new IdleWatch(10_000, (seconds) => fired.push(seconds));
  watch.activity(0);
  tick(20_000);
  assert.deepEqual(fired, [], "nothing counts before start()");
  watch.start();
  tick(9_000);
  watch.activity(2); // browsers used the app 2 s ago: 3 s of idle time are forgiven... of 9
  tick(2_000);
  assert.deepEqual(fired, [], "11 s after start, 4 s after the reported use");
  tick(6_000);
  assert.deepEqual(fired, [10], "10 s after the reported use");
  tick(60_000);
  watch.activity(0);
  assert.deepEqual(fired, [10], "only once");

  const paused: number[] = [];
  const other = new IdleWatch(10_000, (s) => paused.push(s));
  other.start();
  tick(5_000);
  other.pause();
  tick(60_000);
  assert.deepEqual(paused, [], "a paused watch does not fire");
  other.start();
  tick(9_999);
  assert.deepEqual(paused, [], "a restart counts from its own moment");
  tick(1);
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
