/**
 * The service registry end to end: names, show, verify, list (here and on
 * the gateway), stop, per-service TLS, and that nobody reaches another
 * user's services.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { createSecureContext } from "node:tls";
import { X509Certificate } from "node:crypto";
import { conductorCommand, startConductor, userDir } from "../helpers/conductor.ts";
import { needsRoot } from "../helpers/env.ts";
import { startGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { sshdMissing, startSshd } from "../helpers/sshd.ts";
import { fixture } from "../helpers/install.ts";
import { startProcess } from "../helpers/process.ts";

const skip = sshdMissing || needsRoot;

test("show, verify, list and stop work on one's own live service and on nobody else's", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, gw, { key: "lab", args: ["--name", "notebook"], token: "magic-key-1234567" });
  const live = await client.live();
  assert.equal(live.name, "notebook");

  const env = client.stateEnv;
  const show = await conductorCommand(t, "alice", ["show", "notebook"], env);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, new RegExp(`^url +http://${live.urls[0].replace(/\./g, "\\.")}/$`, "m"));
  assert.match(show.stdout, new RegExp(`^auth link +http://${live.urls[0].replace(/\./g, "\\.")}/_conductor/auth/magic-key-1234567$`, "m"));
  const json = JSON.parse((await conductorCommand(t, "alice", ["show", "--json", "notebook"], env)).stdout);
  assert.equal(json.token, "magic-key-1234567");
  assert.equal(json.key, "lab");
  // The auth link really opens the app.
  const auth = await request({ port: gw.port, host: live.urls[0], path: "/_conductor/auth/magic-key-1234567?next=/hello" });
  assert.equal(auth.status, 302);

  assert.equal((await conductorCommand(t, "alice", ["verify", "notebook", "magic-key-1234567"], env)).code, 0);
  assert.equal((await conductorCommand(t, "alice", ["verify", "notebook", "magic-key-12"], env)).code, 1);

  const list = await conductorCommand(t, "alice", ["list"], env);
  assert.match(list.stdout, /^NAME +KIND +URL +GATEWAY +HOST +PID +AGE$/m);
  assert.match(list.stdout, /^notebook +http +http:\/\//m);
  assert.ok(!list.stdout.includes("magic-key-1234567"), "list shows no token");
  assert.equal(JSON.parse((await conductorCommand(t, "alice", ["list", "--json", "note*"], env)).stdout).length, 1);
  assert.equal(JSON.parse((await conductorCommand(t, "alice", ["list", "--json", "x*"], env)).stdout).length, 0);

  const options = sshd.clientOptions("alice").flatMap((o) => ["-o", o]);
  const remote = await conductorCommand(t, "alice", ["list", "--json", "--gateway", `alice@127.0.0.1:${sshd.port}${gw.controlPath}`, ...options], env);
  assert.equal(remote.code, 0, remote.stderr);
  const services = JSON.parse(remote.stdout);
  assert.deepEqual(services.map((s: { name: string }) => s.name), ["notebook"]);
  assert.ok(!remote.stdout.includes("magic-key-1234567") && !/auth/i.test(remote.stdout), "the gateway lists no token");
  assert.equal(services[0].lastActivity, null, "no browser has used it: the auth link is the gateway's own page");
  assert.ok(Number.isInteger(services[0].idle) && services[0].idle >= 0, JSON.stringify(services[0]));
  assert.equal((await request({ port: gw.port, host: live.urls[0], path: "/hello", headers: { Cookie: "authorization=magic-key-1234567" } })).status, 200);
  const used = await conductorCommand(t, "alice", ["list", "--gateway", `alice@127.0.0.1:${sshd.port}${gw.controlPath}`, ...options], env);
  assert.match(used.stdout, /^NAME +KIND +URL +AGE +IDLE$/m);
  assert.match(used.stdout, /^notebook +http +http:\/\/\S+ +\S+ +[0-9]+s$/m, "the owner sees how long ago a browser used it");

  // Bob sees, verifies and stops nothing of alice's, locally or on the gateway.
  assert.equal((await conductorCommand(t, "bob", ["show", "notebook"])).code, 1);
  assert.equal((await conductorCommand(t, "bob", ["verify", "notebook", "magic-key-1234567"])).code, 1);
  assert.equal((await conductorCommand(t, "bob", ["stop", "notebook"])).code, 1);
  assert.equal(JSON.parse((await conductorCommand(t, "bob", ["list", "--json"])).stdout).length, 0);
  const bobRemote = await conductorCommand(t, "bob", ["list", "--json", "--gateway", `bob@127.0.0.1:${sshd.port}${gw.controlPath}`, ...sshd.clientOptions("bob").flatMap((o) => ["-o", o])]);
  assert.equal(bobRemote.code, 0, bobRemote.stderr);
  assert.deepEqual(JSON.parse(bobRemote.stdout), []);
  const stateDir = join(env.XDG_STATE_HOME!, "conductor");
  assert.equal(statSync(stateDir).mode & 0o777, 0o700);
  assert.equal(statSync(join(stateDir, "notebook.json")).mode & 0o777, 0o600);

  const stop = await conductorCommand(t, "alice", ["stop", "notebook"], env);
  assert.equal(stop.code, 0, stop.stderr);
  assert.match(stop.stdout, /^stopped notebook \(pid \d+\)$/m);
  assert.equal((await client.process.exited).code, 0);
  assert.equal((await conductorCommand(t, "alice", ["show", "notebook"], env)).code, 1, "the record is gone");
});

test("a second live service of the same name is refused, here and on the gateway", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const first = startConductor(t, sshd, gw, { key: "one", args: ["--name", "shared"] });
  await first.live();
  const local = startConductor(t, sshd, gw, { key: "two", args: ["--name", "shared"], env: first.stateEnv });
  assert.equal((await local.process.exited).code, 1);
  assert.match(String(local.events().find((e) => e.state === "failed")?.reason), /one of that name is live .*conductor stop shared/);
  // From another state directory (another machine), the gateway says no.
  const elsewhere = startConductor(t, sshd, gw, { key: "three", args: ["--name", "shared"], env: { XDG_STATE_HOME: userDir(t, "alice") } });
  assert.equal((await elsewhere.process.exited).code, 1);
  assert.match(String(elsewhere.events().find((e) => e.state === "failed")?.reason), /already has a live service named 'shared'/);
});

test("--tls gives the app a key and a self-signed certificate that openssl and node:tls accept", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const client = startConductor(t, sshd, gw, { key: "secure", args: ["--tls"] });
  const live = await client.live();
  const line = String(client.events().find((e) => e.state === "data")?.data);
  const m = /tls (\S+) (\S+)/.exec(line);
  assert.ok(m, `the app got CONDUCTOR_TLS_CERT and CONDUCTOR_TLS_KEY: ${line}`);
  const [cert, key] = [m[1], m[2]];
  assert.equal(statSync(key).mode & 0o777, 0o600);
  assert.equal(statSync(cert).mode & 0o777, 0o600);
  const pem = readFileSync(cert);
  assert.equal(new X509Certificate(pem).fingerprint256, live.fingerprint);
  createSecureContext({ cert: pem, key: readFileSync(key) });
  const text = execFileSync("openssl", ["x509", "-noout", "-text", "-in", cert], { encoding: "utf8" });
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  assert.match(text, /DNS:secure, DNS:localhost/);
  const show = await conductorCommand(t, "alice", ["show", "secure"], client.stateEnv);
  assert.match(show.stdout, new RegExp(`^tls +SHA-256 ${live.fingerprint}$`, "m"));
});

test("the library publishes, shows, verifies and lists like the command", { skip }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t);
  const dir = userDir(t, "alice");
  const options = sshd.clientOptions("alice");
  const program = startProcess(t, process.execPath, [fixture("library_user"), `alice@127.0.0.1:${sshd.port}${gw.controlPath}`, join(dir, "lib.sock"), ...options], { user: "alice", stdin: true });
  const seen = await program.waitForJson((l) => Array.isArray(l.urls));
  assert.deepEqual(seen.listed, ["library"]);
  assert.equal(seen.shownToken, "library-token-0123");
  assert.equal(seen.verifyRight, true);
  assert.equal(seen.verifyWrong, false);
  const urls = seen.urls as string[];
  assert.equal(seen.authLink, `http://${urls[0]}/_conductor/auth/library-token-0123`);
  assert.equal((await request({ port: gw.port, host: urls[0], path: "/hello", headers: { Cookie: "authorization=library-token-0123" } })).status, 200);
  program.child.stdin!.end();
  const closed = await program.waitForJson((l) => l.closed === true);
  assert.equal(closed.afterClose, null);
  assert.equal((await request({ port: gw.port, host: urls[0], path: "/hello", headers: { Cookie: "authorization=library-token-0123" } })).status, 404);
});
