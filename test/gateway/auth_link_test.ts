/**
 * The auth link sets the cookie only when its token opens the app at that
 * address: a mistyped link, or another app's, must not log a browser out of
 * an app it uses (issue 29, item 7).
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { silentLogger } from "../../src/lib/log.ts";
import { startGateway, type Gateway } from "../../src/server/service.ts";
import { suiteCleanup } from "../helpers/cleanup.ts";
import { request } from "../helpers/http.ts";
import { register } from "../helpers/register.ts";

const LAB = "auth-link-lab-token";
const OTHER = "auth-link-other-token";

describe("the auth link", () => {
  const cleanup = suiteCleanup();
  let gw: Gateway;
  let port: number;
  let lab: string;
  let other: string;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "conductor-authlink-"));
    chmodSync(dir, 0o755);
    cleanup.after(() => rmSync(dir, { recursive: true, force: true }));
    gw = await startGateway({ port: 0, bind: "127.0.0.1", runtimeDir: dir, stateDir: join(dir, "state"), domains: [], trustForwarded: false }, silentLogger);
    cleanup.after(() => gw.close());
    port = (gw.address as { port: number }).port;
    lab = ((await register(cleanup, gw.control.path, { key: "lab", token: LAB, user: null })).reply.urls as string[])[0];
    other = ((await register(cleanup, gw.control.path, { key: "other", token: OTHER, user: null })).reply.urls as string[])[0];
  });

  it("sets the cookie and redirects when its token opens this host's app", async () => {
    const res = await request({ port, host: lab, path: `/_conductor/auth/${LAB}?next=/hello` });
    assert.equal(res.status, 302);
    assert.equal(res.headers.location, "/hello");
    assert.deepEqual(res.headers["set-cookie"], [`authorization=${LAB}; HttpOnly; Path=/; SameSite=Lax`]);
  });

  it("leaves a working cookie alone when its token is another app's or mistyped, and says so (regression)", async () => {
    for (const token of [OTHER, LAB + "x", "z".repeat(20)]) {
      const res = await request({ port, host: lab, path: `/_conductor/auth/${token}?next=/hello`, headers: { Cookie: `authorization=${LAB}` } });
      assert.equal(res.status, 403, token);
      assert.equal(res.headers["set-cookie"], undefined, "no cookie replaces the one the browser holds");
      assert.match(res.text, /token in this link is not the token of the app at this address/);
      assert.doesNotMatch(res.text, new RegExp(LAB), "the page does not echo a token");
    }
    const still = await request({ port, host: lab, path: "/hello", headers: { Cookie: `authorization=${LAB}` } });
    assert.equal(still.status, 200, "the browser's cookie still opens the app");
  });

  it("has a 403 page for a missing or wrong cookie that differs from the wrong link's", async () => {
    const res = await request({ port, host: lab, path: "/hello", headers: { Cookie: `authorization=${OTHER}` } });
    assert.equal(res.status, 403);
    assert.match(res.text, /needs its authorization link/);
    assert.doesNotMatch(res.text, /token in this link/);
  });

  it("sets no cookie for a host without an app", async () => {
    const res = await request({ port, host: "nothing-here.localhost", path: `/_conductor/auth/${LAB}` });
    assert.equal(res.status, 404);
    assert.equal(res.headers["set-cookie"], undefined);
    assert.equal((await request({ port, host: other, path: `/_conductor/auth/${OTHER}` })).status, 302, "each app's own link works on its own host");
  });
});
