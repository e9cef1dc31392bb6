/**
 * Which silent control connection gives way when the pool is full: the
 * oldest with nothing placed past the grace, else the oldest of the user with
 * the most, never a user's only one.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { pickToGiveWay, SETUP_GRACE_MS } from "../../src/control/fairness.ts";

const NOW = 1_000_000;
/** A pending client `age` ms old whose directory holds a socket of `uid` (or nothing, with null). */
const client = (name: string, age: number, uid: number | null) => ({ name, openedAt: NOW - age, directory: uid === null ? `/empty/${name}` : `/uid-${uid}/${name}` });
const owner = (dir: string): number | null => dir.startsWith("/uid-") ? Number(dir.split("/")[1].slice(4)) : null;

test("pickToGiveWay(): the oldest connection with nothing placed past the grace goes first", () => {
  const pending = [client("alice", 9000, 1001), client("young", SETUP_GRACE_MS - 1, null), client("silent", SETUP_GRACE_MS, null), client("later", 9000, null)];
  assert.equal(pickToGiveWay(pending, NOW, owner)?.name, "silent", "older than the grace, in order of connection");
  assert.equal(pickToGiveWay([client("fresh", 10, null)], NOW, owner), null, "a client still setting up keeps its slot");
  assert.equal(pickToGiveWay([{ openedAt: NOW - 5000, directory: null }], NOW, owner)?.directory, null, "no directory yet counts as nothing placed");
});

test("pickToGiveWay(): else the oldest connection of the user holding the most, but never a user's only one", () => {
  const pending = [client("a1", 9000, 1001), client("b1", 8000, 1002), client("b2", 7000, 1002), client("b3", 100, 1002), client("c1", 50, 1003)];
  assert.equal(pickToGiveWay(pending, NOW, owner)?.name, "b1");
  assert.equal(pickToGiveWay([client("a1", 9000, 1001), client("c1", 50, 1003)], NOW, owner), null, "one each: the newcomer is refused instead");
});
