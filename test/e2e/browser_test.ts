/**
 * A real browser: Debian's Chromium, headless, against conductor-server over
 * TLS (a throwaway CA and certificate), through a private sshd and conductor
 * running the test app as alice. It opens the auth link, is redirected to
 * the app's page, keeps the cookie (HttpOnly, Secure, SameSite=Lax), and the
 * page's websocket echoes through the gateway. Screenshots go to test/output.
 */
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { missing, program } from "../helpers/apps.ts";
import { certDir, issue, makeCa } from "../helpers/certs.ts";
import { startChromium, type Browser } from "../helpers/chromium.ts";
import { startConductor } from "../helpers/conductor.ts";
import { outputDir } from "../helpers/env.ts";
import { startGateway } from "../helpers/gateway.ts";
import { sshdMissing, startSshd } from "../helpers/sshd.ts";
import { waitFor } from "../helpers/wait.ts";

const TOKEN = "browser-token-0123456789";

/** Opens `url` in a new page and waits for its load event; returns the page's session. */
async function open(browser: Browser, url: string): Promise<string> {
  const page = await browser.newPage();
  await browser.send("Page.enable", {}, page);
  await browser.send("Network.enable", {}, page);
  const loaded = browser.event("Page.loadEventFired", page);
  await browser.send("Page.navigate", { url }, page);
  await loaded;
  return page;
}

async function evaluate(browser: Browser, page: string, expression: string): Promise<unknown> {
  const { result } = await browser.send("Runtime.evaluate", { expression, returnByValue: true }, page) as { result: { value: unknown } };
  return result.value;
}

async function screenshot(browser: Browser, page: string, name: string): Promise<string> {
  const { data } = await browser.send("Page.captureScreenshot", { format: "png" }, page) as { data: string };
  mkdirSync(outputDir, { recursive: true });
  const path = join(outputDir, name);
  writeFileSync(path, Buffer.from(data, "base64"));
  return path;
}

test("Chromium opens the auth link over TLS, keeps the cookie, and the app's page talks back over a websocket", { skip: sshdMissing || missing("chromium"), timeout: 120_000 }, async (t) => {
  const dir = certDir(t);
  const ca = makeCa(dir);
  const routeHost = "web-alice.localhost";
  const server = issue(dir, ca, "gateway", [routeHost]);
  const spki = createHash("sha256").update(new X509Certificate(readFileSync(server.cert)).publicKey.export({ type: "spki", format: "der" })).digest("base64");

  const sshd = await startSshd(t);
  const gw = await startGateway(t, { args: ["--ssl-cert-file", server.cert, "--ssl-key-file", server.key] });
  const client = startConductor(t, sshd, gw, { key: "web", token: TOKEN });
  const live = await client.live();
  const host = live.urls[0];
  assert.equal(host, `${routeHost}:${gw.port}`);

  const browser = await startChromium(t, program("chromium"), { trustSpki: [spki] });
  const page = await open(browser, `https://${host}/_conductor/auth/${TOKEN}?next=/page`);
  assert.equal(await evaluate(browser, page, "location.href"), `https://${host}/page`, "redirected to next");
  let echo: unknown = "";
  await waitFor(async () => (echo = await evaluate(browser, page, "document.getElementById('echo').textContent")) === "hello from the browser");
  assert.equal(echo, "hello from the browser", "the websocket echo came back through the gateway");
  assert.equal(await evaluate(browser, page, "document.getElementById('cookies').textContent"), "(none)", "the page's script cannot read the cookie");
  const { cookies } = await browser.send("Network.getCookies", { urls: [`https://${host}/`] }, page) as { cookies: Array<Record<string, unknown>> };
  const auth = cookies.find((c) => c.name === "authorization");
  assert.ok(auth, `the cookie is stored: ${JSON.stringify(cookies)}`);
  assert.equal(auth.value, TOKEN);
  assert.equal(auth.httpOnly, true);
  assert.equal(auth.secure, true);
  assert.equal(auth.sameSite, "Lax");
  assert.equal(auth.path, "/");
  const shot = await screenshot(browser, page, "browser-live.png");
  assert.ok(readFileSync(shot).subarray(1, 4).toString() === "PNG");

  // A browser without the cookie gets the gateway's 403 page.
  const stranger = await startChromium(t, program("chromium"), { trustSpki: [spki] });
  const denied = await open(stranger, `https://${host}/page`);
  const text = String(await evaluate(stranger, denied, "document.body.innerText"));
  assert.match(text, /403 Forbidden/);
  assert.match(text, /authorization link/);
  await screenshot(stranger, denied, "browser-403.png");
});
