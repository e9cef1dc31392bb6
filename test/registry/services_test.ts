import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { findService, globRe, keyMatches, listServices, registryDir, type ServiceRecord } from "../../src/registry/services.ts";
import { defer } from "../helpers/cleanup.ts";

function record(name: string, host: string, pid: number): ServiceRecord {
  return { name, kind: "http", key: name, gateway: "gw", urls: [`${name}-ann.example.org`], scheme: "https", token: `tok-${name}`,
    host, pid, pidStarted: 0, started: new Date().toISOString(), socket: "/s" };
}

test("findService() drops records of dead runs on this host and keeps those of other hosts", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "conductor-registry-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const dead = Number(spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout);
  writeFileSync(join(dir, "gone.json"), JSON.stringify(record("gone", hostname(), dead)));
  writeFileSync(join(dir, "remote.json"), JSON.stringify(record("remote", "compute-17", dead)));
  writeFileSync(join(dir, "here.json"), JSON.stringify(record("here", hostname(), process.pid)));
  assert.equal(await findService(dir, "gone"), null);
  assert.equal(existsSync(join(dir, "gone.json")), false, "the dead record is removed");
  assert.equal((await findService(dir, "remote"))?.host, "compute-17", "another host's record is kept");
  assert.deepEqual((await listServices(dir)).map((r) => r.name), ["here", "remote"]);
  assert.deepEqual((await listServices(dir, "h?re")).map((r) => r.name), ["here"]);
});

test("keyMatches() compares the magic key exactly; globRe() knows * and ? only", () => {
  const r = record("lab", "h", 1);
  assert.equal(keyMatches(r, "tok-lab"), true);
  assert.equal(keyMatches(r, "tok-la"), false);
  assert.equal(keyMatches(r, "tok-lab "), false);
  assert.equal(globRe("a.*").test("a.b"), true);
  assert.equal(globRe("a.*").test("axb"), false);
});

test("registryDir() follows XDG_STATE_HOME, else ~/.local/state", () => {
  assert.equal(registryDir({ XDG_STATE_HOME: "/x/state", HOME: "/home/ann" }), "/x/state/conductor");
  assert.equal(registryDir({ HOME: "/home/ann" }), "/home/ann/.local/state/conductor");
  assert.equal(registryDir({ XDG_STATE_HOME: "relative", HOME: "/home/ann" }), "/home/ann/.local/state/conductor");
});
