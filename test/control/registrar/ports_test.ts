/** Sticky ports and reservations of the stream range: who gets which port, in which order. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { PortPolicy } from "../../../src/control/registrar/ports.ts";

test("PortPolicy.limit() ends a user's oldest reservations beyond those kept, and nobody else's", () => {
  const ports = new PortPolicy({ first: 1, last: 5 }, new Map());
  ports.reserve(1, "alice/a", 1000);
  ports.reserve(2, "al/a", 1000);
  ports.reserve(3, "alice/b", 1000);
  ports.reserve(4, "alice/c", 1000);
  ports.reserve(1, "alice/a", 1000);
  ports.limit("alice", 2, 0);
  assert.deepEqual([1, 2, 3, 4].map((p) => ports.reservation(p, 0)?.key), ["alice/a", "al/a", undefined, "alice/c"], "a port reserved again is the newest");
  ports.limit("alice", 0, 0);
  assert.deepEqual([1, 2, 3, 4].map((p) => ports.reservation(p, 0)?.key), [undefined, "al/a", undefined, undefined]);
});

test("PortPolicy.candidates() offers the port kept for a service first, even once others pushed it out of the sticky memory", () => {
  const ports = new PortPolicy({ first: 1, last: 3 }, new Map([["bob/x", 1]]));
  ports.reserve(3, "alice/db", 1000);
  assert.deepEqual(ports.candidates("alice/db", () => false, 0), [3, 2, 1]);
  assert.deepEqual(ports.candidates("bob/y", () => false, 0), [2, 1], "nobody else gets it");
  assert.deepEqual(ports.candidates("bob/x", (p) => p === 2, 0), [1], "never a taken one");
  assert.deepEqual(ports.candidates("bob/y", () => false, 1000), [2, 3, 1], "until the reservation ends");
});
