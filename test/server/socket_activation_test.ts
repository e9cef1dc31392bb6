/**
 * Socket activation's environment (sd_listen_fds(3)) and how the command line
 * takes it: one socket for this process, the variables gone afterwards, and
 * options that cannot apply refused with the way out; what the socket is,
 * found before listening on it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseServerArgs } from "../../src/server/cli.ts";
import { activatedAddress, takeActivatedSocket } from "../../src/server/socket_activation.ts";

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
    /Cannot use the sockets systemd passed: there are 2 \(a:b\), but conductor-server listens on one; give its \.socket unit a single ListenStream= line/);
  assert.throws(() => takeActivatedSocket({ LISTEN_PID: "7", LISTEN_FDS: "x" }, 7), /Cannot use the socket systemd passed: LISTEN_FDS=x is not a count of sockets/);
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

test("activatedAddress(): the port of a listening TCP socket, { fd } for a UNIX one, null for what is not a socket", async (t) => {
  const listening = (server: Server, where: number | string): Promise<void> => new Promise((resolve) => server.listen(where, resolve));
  // What each descriptor of this process is, as if systemd had passed it.
  const inspectAll = (): Promise<Array<{ port: number } | { fd: number } | null>> =>
    Promise.all(readdirSync("/proc/self/fd").map((fd) => activatedAddress(Number(fd))));
  const unixCount = async (): Promise<number> => (await inspectAll()).filter((a) => a !== null && "fd" in a).length;
  const tcp = createServer();
  const unix = createServer();
  const dir = mkdtempSync(join(tmpdir(), "conductor-activated-"));
  t.after(() => {
    tcp.close();
    unix.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await listening(tcp, 0);
  const port = (tcp.address() as AddressInfo).port;
  assert.equal((await inspectAll()).filter((a) => a !== null && "port" in a && a.port === port).length, 1, "the TCP socket and its port");
  const before = await unixCount();
  await listening(unix, join(dir, "front.sock"));
  assert.equal(await unixCount(), before + 1, "the UNIX socket");
  assert.equal(await activatedAddress(0, dir), null, "nothing where /proc does not say");
});
