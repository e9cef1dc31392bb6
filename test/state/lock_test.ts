/**
 * Lock files on NFS-safe terms: a lock of a live process of this host holds;
 * one whose pid now names another process, one from another host past its
 * age, and one half written by a crash are taken over; release is the
 * acquisition's own and safe twice.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { acquireLock, processStartTime, withLock } from "../../src/state/lock.ts";

function lockPath(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "conductor-lock-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "x.lock");
}

test("acquireLock() waits for a live process of this host, then gives up naming it and what to do", async (t) => {
  const path = lockPath(t);
  writeFileSync(path, JSON.stringify({ pid: process.pid, host: hostname(), started: processStartTime(process.pid), id: "other" }));
  await assert.rejects(acquireLock(path, { timeoutMs: 200 }), new RegExp(`^ConductorError: Cannot take lock ${path}: held by pid ${process.pid} on ${hostname()} for more than 0 s; if that process is gone, remove the file$`));
  assert.ok(existsSync(path), "a live holder's lock stays");
});

test("acquireLock() takes over a lock whose pid now names a process started at another time (a reused pid)", async (t) => {
  const path = lockPath(t);
  writeFileSync(path, JSON.stringify({ pid: process.pid, host: hostname(), started: processStartTime(process.pid) + 1, id: "reused" }));
  const lock = await acquireLock(path, { timeoutMs: 2000 });
  assert.equal(JSON.parse(readFileSync(path, "utf8")).pid, process.pid);
  assert.notEqual(JSON.parse(readFileSync(path, "utf8")).id, "reused");
  await lock.release();
});

test("acquireLock() takes over another host's lock only once it is older than staleMs", async (t) => {
  const path = lockPath(t);
  writeFileSync(path, JSON.stringify({ pid: 1, host: "elsewhere.example.org", started: 1, id: "remote" }));
  await assert.rejects(acquireLock(path, { timeoutMs: 200, staleMs: 60_000 }), /held by pid 1 on elsewhere\.example\.org/);
  const old = new Date(Date.now() - 120_000);
  utimesSync(path, old, old);
  const lock = await acquireLock(path, { timeoutMs: 2000, staleMs: 60_000 });
  await lock.release();
});

test("acquireLock() takes over a half-written lock left by a crash, but not one being written right now", async (t) => {
  const path = lockPath(t);
  writeFileSync(path, "");
  await assert.rejects(acquireLock(path, { timeoutMs: 200 }), /held by another process/);
  const old = new Date(Date.now() - 10_000);
  utimesSync(path, old, old);
  await (await acquireLock(path, { timeoutMs: 2000 })).release();
});

test("a lock's release is its own and safe to call twice; withLock() releases after a throw", async (t) => {
  const path = lockPath(t);
  const first = await acquireLock(path);
  await first.release();
  const second = await acquireLock(path);
  await first.release();
  assert.ok(existsSync(path), "a late release of an earlier acquisition leaves the new holder's lock");
  await second.release();
  await second.release();
  assert.ok(!existsSync(path));
  await assert.rejects(withLock(path, async () => { throw new Error("inside"); }), /inside/);
  assert.ok(!existsSync(path), "released after the throw");
});
