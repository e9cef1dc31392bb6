import assert from "node:assert/strict";
import { test } from "node:test";
import { parseClientArgs } from "../../src/client/cli.ts";

test("parseClientArgs() takes the original's command line", () => {
  const c = parseClientArgs(["-k", "Lab", "-r", "me@gw:2222/run/client", "app.sock", "--", "jupyter", "lab", "--sock", "x"], "/home/me");
  assert.equal(c.kind, "run");
  if (c.kind !== "run") return;
  assert.equal(c.options.key, "lab");
  assert.equal(c.options.replace, true);
  assert.equal(c.options.appSocket, "/home/me/app.sock");
  assert.deepEqual(c.options.command, ["jupyter", "lab", "--sock", "x"]);
  assert.deepEqual(c.options.destination, { user: "me", host: "gw", port: 2222, controlPath: "/run/client" });
});

test("parseClientArgs() starts the command at the third operand when there is no '--'", () => {
  const c = parseClientArgs(["gw", "/s.sock", "python3", "-m", "http.server", "-v"]);
  assert.equal(c.kind, "run");
  if (c.kind === "run") {
    assert.deepEqual(c.options.command, ["python3", "-m", "http.server", "-v"]);
    assert.equal(c.options.verbose, false, "the command's -v is not conductor's");
  }
});

test("parseClientArgs() passes -o options to ssh and refuses malformed ones", () => {
  const c = parseClientArgs(["-o", "Port=2222", "-o", "IdentityFile=/k", "gw", "/s", "--", "x"]);
  assert.equal(c.kind === "run" && c.options.sshOptions.join(","), "Port=2222,IdentityFile=/k");
  assert.throws(() => parseClientArgs(["-o", "ProxyCommand", "gw", "/s", "--", "x"]), /-o takes an ssh option as Name=value/);
});

test("parseClientArgs() explains what is missing or wrong", () => {
  assert.throws(() => parseClientArgs(["gw"]), /a gateway and an app socket are needed/);
  assert.throws(() => parseClientArgs(["gw", "/s"]), /no command to run/);
  assert.throws(() => parseClientArgs(["-k", "a_b", "gw", "/s", "--", "x"]), /Cannot use key/);
  assert.throws(() => parseClientArgs(["gw", "/a:b", "--", "x"]), /contains ':'/);
  assert.throws(() => parseClientArgs(["gw", "/" + "x".repeat(120), "--", "x"]), /longer than the 107 bytes/);
  assert.throws(() => parseClientArgs(["--bogus", "gw", "/s", "--", "x"]), /Try 'conductor --help'/);
});
