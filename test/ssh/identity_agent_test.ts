/**
 * The IdentityAgent option conductor gives ssh for --agent: ssh itself
 * (ssh -G prints the configuration it would use) reads back the same path,
 * spaces and percent signs included.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { identityAgent } from "../../src/ssh/master.ts";

const skip = spawnSync("ssh", ["-V"]).error === undefined ? false : "ssh is not installed (apt-get install openssh-client)";

test("identityAgent(): ssh reads back the very path, spaces and % included; paths it would read otherwise are refused", { skip }, () => {
  for (const path of ["/run/user/1000/conductor/agent.sock", "/home/ann/My Agents/agent 1.sock", "/tmp/100%/agent.sock"]) {
    const result = spawnSync("ssh", ["-G", "-o", identityAgent(path), "gateway.example.org"], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(/^identityagent (.*)$/m.exec(result.stdout)?.[1], path);
  }
  for (const path of ['/tmp/a"b/agent.sock', "/tmp/${HOME}/agent.sock", "/tmp/a\nb"]) {
    assert.throws(() => identityAgent(path), /Cannot use the agent socket .*: ssh cannot be given a path with a quote/);
  }
});
