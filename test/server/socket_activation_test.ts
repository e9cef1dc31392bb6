/**
 * Socket activation's environment (sd_listen_fds(3)) and how the command line
 * takes it: one socket for this process, the variables gone afterwards, and
 * options that cannot apply refused with the way out.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseServerArgs } from "../../src/server/cli.ts";
import { takeActivatedSocket } from "../../src/server/socket_activation.ts";

test("takeActivatedSocket(): descriptor 3 when systemd passed one socket to this process; the variables are removed either way", () => {
  const env: NodeJS.ProcessEnv = { LISTEN_PID: "1234", LISTEN_FDS: "1", LISTEN_FDNAMES: "conductor-server.socket", PATH: "/bin" };
  assert.equal(takeActivatedSocket(env, 1234), 3);
  assert.deepEqual(env, { PATH: "/bin" });
  const forParent: NodeJS.ProcessEnv = { LISTEN_PID: "1", LISTEN_FDS: "1" };
  assert.equal(takeActivatedSocket(forParent, 1234), undefined, "sockets passed to another process are not ours");
  assert.deepEqual(forParent, {});
  assert.equal(takeActivatedSocket({}, 1234), undefined);
  assert.equal(takeActivatedSocket({ LISTEN_PID: "1234", LISTEN_FDS: "0" }, 1234), undefined);
});

test("takeActivatedSocket(): more than one socket, or a malformed count, is refused with what to change", () => {
  assert.throws(() => takeActivatedSocket({ LISTEN_PID: "7", LISTEN_FDS: "2", LISTEN_FDNAMES: "a:b" }, 7),
    /systemd passed 2 sockets \(a:b\), but conductor-server listens on one; give its \.socket unit a single ListenStream= line/);
  assert.throws(() => takeActivatedSocket({ LISTEN_PID: "7", LISTEN_FDS: "x" }, 7), /LISTEN_FDS=x, which is not a count of sockets/);
});

test("parseServerArgs(): with a socket from systemd, --port, --bind, --sock and --sock-group are refused, and the descriptor is used", () => {
  const command = parseServerArgs(["-d", "{key}-{user}.example.org"], 3);
  assert.equal(command.kind, "run");
  assert.equal(command.kind === "run" && command.options.listenFd, 3);
  assert.throws(() => parseServerArgs(["--port", "443", "--bind", "::"], 3),
    /systemd passed a listening socket \(socket activation\), so --port, --bind cannot apply: drop the option, or set ListenStream=, SocketGroup= and SocketMode= in the \.socket unit instead/);
  assert.throws(() => parseServerArgs(["--sock", "/run/x.sock"], 3), /so --sock cannot apply/);
  assert.equal((parseServerArgs([]) as { options: { listenFd?: number } }).options.listenFd, undefined);
});
