/**
 * The gateway's stored state: users' routes and the streams file round-trip,
 * a removal forgets only the registration it names, an emptied user's file
 * goes, files that are not users' are ignored, and a corrupt file is set
 * aside with both paths logged while the rest loads.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Fields, Logger } from "../../src/lib/log.ts";
import { GatewayState, type RouteRecord } from "../../src/state/gateway_state.ts";
import { StreamsFile } from "../../src/state/streams_file.ts";

/** A logger that keeps what it was told. */
function recordingLogger(): Logger & { lines: Array<{ level: string; msg: string; fields?: Fields }> } {
  const lines: Array<{ level: string; msg: string; fields?: Fields }> = [];
  const at = (level: string) => (msg: string, fields?: Fields): void => { lines.push({ level, msg, fields }); };
  return { lines, verbose: true, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

function stateDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "conductor-state-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function route(key: string, directory: string): RouteRecord {
  return { key, name: key, uid: 1000, socket: join(directory, "socket"), directory, auth: "a".repeat(128), created: "2026-12-04T00:00:00.000Z" };
}

test("GatewayState: routes round-trip per user; a removal forgets only the registration of its directory; an emptied user's file goes", async (t) => {
  const dir = stateDir(t);
  const state = new GatewayState(dir, recordingLogger());
  await state.prepare();
  state.saveRoute("alice", route("lab", "/run/c/sockets/1"));
  state.saveRoute("alice", route("db", "/run/c/sockets/2"));
  state.saveRoute("bob", route("lab", "/run/c/sockets/3"));
  // A newer registration of alice's "lab" replaces the first; removing the first's directory then changes nothing.
  state.saveRoute("alice", route("lab", "/run/c/sockets/4"));
  state.removeRoute("alice", "lab", "/run/c/sockets/1");
  await state.flush();
  const loaded = new GatewayState(dir, recordingLogger());
  const files = Object.fromEntries((await loaded.load()).map((f) => [f.user, f.routes.map((r) => `${r.key}@${r.directory}`).sort()]));
  assert.deepEqual(files, { alice: ["db@/run/c/sockets/2", "lab@/run/c/sockets/4"], bob: ["lab@/run/c/sockets/3"] });
  state.setRoutes("bob", []);
  await state.flush();
  assert.ok(!existsSync(join(dir, "users", "bob.json")), "a user without routes has no file");
});

test("GatewayState: a corrupt user file is set aside and logged with both paths; the others load; names that are not users' are ignored", async (t) => {
  const dir = stateDir(t);
  const logger = recordingLogger();
  const state = new GatewayState(dir, logger);
  await state.prepare();
  state.saveRoute("alice", route("lab", "/run/c/sockets/1"));
  await state.flush();
  writeFileSync(join(dir, "users", "bob.json"), "{ not json");
  writeFileSync(join(dir, "users", "Not-A-User.json"), "{}");
  writeFileSync(join(dir, "users", ".alice.json.1234.tmp"), "half");
  const again = new GatewayState(dir, logger);
  await again.prepare();
  const users = (await again.load()).map((f) => f.user);
  assert.deepEqual(users, ["alice"]);
  const complaint = logger.lines.find((l) => l.level === "error");
  assert.ok(complaint !== undefined && complaint.msg.includes(join(dir, "users", "bob.json")) && /corrupt/.test(complaint.msg), JSON.stringify(logger.lines));
  const left = readdirSync(join(dir, "users"));
  assert.ok(left.some((f) => f.startsWith("bob.json.corrupt-")), `set aside: ${left.join(" ")}`);
  assert.ok(!left.includes(".alice.json.1234.tmp"), "an interrupted write's temporary file is removed at start");
});

test("StreamsFile: saves in a row end with the last on disk; a corrupt file loads as nothing stored, and says so", async (t) => {
  const dir = stateDir(t);
  const logger = recordingLogger();
  const file = new StreamsFile(dir, logger);
  const record = (port: number) => ({ port, owner: "alice", name: `s${port}`, backend: `unix:/run/c/sockets/${port}/socket`, created: "2026-12-04T00:00:00.000Z" });
  const saves = [9000, 9001, 9002].map((port) => file.save({ streams: [record(port)], sticky: new Map([[`alice/s${port}`, port]]) }));
  await Promise.all(saves);
  const stored = await new StreamsFile(dir, logger).load();
  assert.deepEqual(stored.streams.map((s) => s.port), [9002]);
  assert.deepEqual([...stored.sticky], [["alice/s9002", 9002]]);
  writeFileSync(join(dir, "streams.json"), "[1, 2");
  const broken = await new StreamsFile(dir, logger).load();
  assert.deepEqual([broken.streams, [...broken.sticky]], [[], []]);
  assert.ok(logger.lines.some((l) => l.level === "error" && l.msg.includes(join(dir, "streams.json"))));
});
