/**
 * conductor-agent's command line and file layout: defaults, durations, the
 * socket path's limits, and options that belong to other commands.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseAgentArgs } from "../../src/agent/cli.ts";
import { agentFiles, defaultSocket } from "../../src/agent/files.ts";

test("parseAgentArgs(): start with its defaults and options; the other commands", () => {
  const env = { XDG_RUNTIME_DIR: "/run/user/1000", HOME: "/home/ann" };
  assert.deepEqual(parseAgentArgs(["start"], env), {
    kind: "start", files: agentFiles("/run/user/1000/conductor/agent.sock"), idleSeconds: 60, keys: [], json: false, foreground: false,
  });
  const start = parseAgentArgs(["start", "--idle", "15m", "--key", "id", "--key", "/k2", "--socket", "a.sock", "--json", "--foreground"], env, "/home/ann");
  assert.deepEqual(start, { kind: "start", files: agentFiles("/home/ann/a.sock"), idleSeconds: 900, keys: ["/home/ann/id", "/k2"], json: true, foreground: true });
  assert.deepEqual(parseAgentArgs(["status", "--json"], env), { kind: "status", files: agentFiles("/run/user/1000/conductor/agent.sock"), json: true });
  for (const kind of ["use", "unlock", "lock", "stop"]) assert.equal(parseAgentArgs([kind], env).kind, kind);
  assert.equal(defaultSocket({ HOME: "/home/ann" }, "node042.cluster.example.org"), "/home/ann/.local/state/conductor/agent-node042.sock",
    "without XDG_RUNTIME_DIR, one per host: a home shared over NFS holds the agents of many nodes");
});

test("parseAgentArgs(): wrong command lines say what is wrong", () => {
  const env = { HOME: "/home/ann" };
  assert.throws(() => parseAgentArgs([], env), /give one command: start, use, unlock, lock, status, stop/);
  assert.throws(() => parseAgentArgs(["lock", "--idle", "5s"], env), /--idle, --key and --foreground go with start/);
  assert.throws(() => parseAgentArgs(["use", "--json"], env), /--json goes with start and status/);
  assert.throws(() => parseAgentArgs(["start", "--idle", "soon"], env), /--idle takes a duration above zero/);
  assert.throws(() => parseAgentArgs(["start", "--socket", "/" + "x".repeat(120)], env), /is 121 bytes long, and UNIX socket paths must stay under 100; give a shorter one with --socket/);
  assert.throws(() => parseAgentArgs(["start", "--socket", "/tmp/it's.sock"], env), /quotes and newlines are not allowed/);
});
