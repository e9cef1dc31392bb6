/**
 * Fuzzing conductor-server (running as user conductor): random and mutated
 * HTTP heads, cookies and Host values on the front end, random lines on the
 * control socket. Seeded and bounded: CONDUCTOR_FUZZ_SEED repeats a run,
 * CONDUCTOR_FUZZ_CASES makes it longer. The server never crashes, answers
 * every case with a status it may give or by closing, leaks no file
 * descriptor, and valid requests interleaved with the fuzz still succeed.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { startGateway } from "../helpers/gateway.ts";
import { rawExchange, request, statusOf } from "../helpers/http.ts";
import { register } from "../helpers/register.ts";
import { waitFor } from "../helpers/wait.ts";
import { envNumber, fdCount, recordFigures, seededRandom } from "./report.ts";

const SEED = envNumber("CONDUCTOR_FUZZ_SEED", Date.now() % 1_000_000);
const CASES = envNumber("CONDUCTOR_FUZZ_CASES", 2000);
const TOKEN = "fuzz-token";
/** Statuses the gateway (or the test app behind it) may give to a mutated request. */
const ALLOWED = new Set([100, 101, 200, 302, 400, 403, 404, 405, 408, 411, 413, 417, 431, 501, 502, 505]);

/** Random HTTP requests: valid templates, then mutated. */
function httpCase(rand: () => number, host: string): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const hosts = [host, "", " ", "a b", "x@" + host, host + "/x", "[::1", "[::1]:80", host.toUpperCase(), host + ".", "x".repeat(300),
    host.replace(/:\d+$/, ":99999"), "%00", "\u00e9\u00e9.example", "nowhere.localhost", host + ", other"];
  const cookies = [`authorization=${TOKEN}`, "authorization=", `authorization="${TOKEN}"`, `a=1; authorization=${TOKEN}; b=2`,
    "authorization=wrong; authorization=" + TOKEN, ";;;", "=", "authorization=" + "x".repeat(5000), "\u0001\u0002", ""];
  const methods = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "G(T", "", "get"];
  const targets = ["/hello", "/echo", "/", "/_conductor/status", "/_conductor/metrics", `/_conductor/auth/${TOKEN}?next=//evil`, "/_conductor/auth/", "*",
    "http://x/", "/a#b", "/../../etc/passwd", "/%00", "/" + "a".repeat(3000), "/ws", "/upload"];
  const lines: string[] = [`${pick(methods)} ${pick(targets)} ${pick(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.", "http/1.1"])}`];
  if (rand() < 0.9) lines.push(`Host: ${pick(hosts)}`);
  if (rand() < 0.8) lines.push(`Cookie: ${pick(cookies)}`);
  let body = "";
  const framing = rand();
  if (framing < 0.15) { body = "hello"; lines.push(`Content-Length: ${pick(["5", "5", "4", "6", "-1", "5, 5", "+5", "99999999999999999", ""])}`); }
  else if (framing < 0.3) { body = pick(["5\r\nhello\r\n0\r\n\r\n", "zz\r\n", "5\nhello\n0\n\n", "0\r\n\r\n", "5;ext\r\nhello\r\n0\r\nT: v\r\n\r\n"]); lines.push(`Transfer-Encoding: ${pick(["chunked", "Chunked", "gzip, chunked", "chunked, identity", "xchunked", " chunked"])}`); }
  else if (framing < 0.35) { lines.push("Content-Length: 5", "Transfer-Encoding: chunked"); body = "0\r\n\r\n"; }
  if (rand() < 0.15) lines.push("Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==");
  if (rand() < 0.1) lines.push(`Expect: ${pick(["100-continue", "nonsense"])}`);
  if (rand() < 0.1) lines.push(`Connection: ${pick(["close", "keep-alive", "host", "content-length", "x-forwarded-for"])}`);
  if (rand() < 0.1) for (let i = 0; i < 120; i++) lines.push(`X-Many-${i}: v`);
  let text = lines.join("\r\n") + "\r\n\r\n" + body;
  if (rand() < 0.2) text += text;
  let bytes = Buffer.from(text, "latin1");
  const mutations = Math.floor(rand() * 4);
  for (let m = 0; m < mutations; m++) {
    const at = Math.floor(rand() * (bytes.length + 1));
    const kind = rand();
    if (kind < 0.3) {
      if (bytes.length > 0) bytes[Math.min(at, bytes.length - 1)] = pick([0, 9, 10, 13, 32, 58, 127, 255, Math.floor(rand() * 256)]);
    } else if (kind < 0.6) {
      bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([pick([0, 10, 13, 32, 58, 0x80, Math.floor(rand() * 256)])]), bytes.subarray(at)]);
    } else if (kind < 0.8) {
      bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + 1 + Math.floor(rand() * 8)))]);
    } else {
      bytes = bytes.subarray(0, at);
    }
  }
  return bytes;
}

/** Random control-socket lines. */
function controlCase(rand: () => number): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const lines = [
    "{}", "[]", "null", "\"x\"", "{", "}", "", "\u0000", "{\"auth\": 1}", `{"auth": "${"a".repeat(128)}"}`, `{"auth": "${"a".repeat(128)}", "key": "../x"}`,
    `{"auth": "${"a".repeat(128)}", "key": "${"k".repeat(100)}"}`, "{\"op\": \"list\"}", "{\"op\": \"rm -rf\"}", "{\"op\": {\"x\": 1}}",
    `{"auth": "${"a".repeat(128)}", "key": "ok", "name": "../../etc"}`, "x".repeat(70_000), "{\"auth\": \"" + "\u00e9".repeat(64) + "\"}",
  ];
  let text = "";
  const n = 1 + Math.floor(rand() * 3);
  for (let i = 0; i < n; i++) text += pick(lines) + (rand() < 0.9 ? "\n" : "");
  const bytes = Buffer.from(text, "utf8");
  if (rand() < 0.3 && bytes.length > 0) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
  return bytes;
}

test(`fuzz: ${CASES} random HTTP heads and ${Math.round(CASES / 5)} control lines (seed ${SEED})`, { timeout: 600_000 }, async (t) => {
  const rand = seededRandom(SEED);
  const gw = await startGateway(t);
  const reg = await register(t, gw.controlPath, { key: "fuzz", token: TOKEN });
  const host = (reg.reply.urls as string[])[0];
  const valid = (): Promise<number> => request({ port: gw.port, host, path: "/hello", headers: { Cookie: `authorization=${TOKEN}` } }).then((r) => r.status);
  // Idle keep-alive connections to the app are the pool's to keep (for 30 s): every other descriptor must come back.
  const fdsOutsidePool = async (): Promise<number> => {
    const fds = fdCount(gw.process.pid);
    const status = await request({ port: gw.port, host, path: "/_conductor/status" });
    return fds - (JSON.parse(status.text) as { upstreamOpen: number }).upstreamOpen;
  };
  assert.equal(await valid(), 200);
  await new Promise((r) => setTimeout(r, 500));
  const fdsBefore = await fdsOutsidePool();

  const statuses: Record<string, number> = {};
  const failures: string[] = [];
  let interleaved = 0;
  // Cases are made in order from the seed, and sent eight at a time.
  for (let first = 0; first < CASES; first += 8) {
    const batch = Array.from({ length: Math.min(8, CASES - first) }, () => httpCase(rand, host));
    const answers = await Promise.all(batch.map((bytes) => rawExchange(gw.port, bytes, { timeoutMs: 20_000, halfClose: true })));
    answers.forEach(({ text, timedOut: hung }, j) => {
      const bytes = batch[j];
      const status = statusOf(text);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (hung) failures.push(`case ${first + j}: no answer and not closed within 20 s: ${JSON.stringify(bytes.toString("latin1").slice(0, 200))}`);
      else if (status !== 0 && !ALLOWED.has(status)) failures.push(`case ${first + j}: status ${status}: ${JSON.stringify(bytes.toString("latin1").slice(0, 200))}`);
    });
    if (first % 48 === 40) {
      const s = await valid();
      interleaved++;
      if (s !== 200) failures.push(`valid request after case ${first + 7} got ${s}`);
    }
    assert.equal(gw.process.child.exitCode, null, `the gateway is alive after case ${first + 7}`);
  }
  const controlCases = Math.round(CASES / 5);
  const replies: Record<string, number> = {};
  for (let i = 0; i < controlCases; i++) {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(gw.controlPath);
      let data = "";
      socket.setEncoding("utf8");
      socket.on("data", (c: string) => {
        data += c;
        if (data.split("\n").length > 2) socket.destroy();
      });
      // Half-close after the lines: a line without its newline ends with the connection.
      socket.once("data", () => socket.end(controlCase(rand)));
      socket.on("close", () => resolve(data));
      socket.on("error", () => resolve(data));
      setTimeout(() => socket.destroy(), 5000);
    });
    const second = answer.split("\n")[1] ?? "";
    const kind = second === "" ? "closed" : /"status": "error"/.test(second) ? "error reply" : /"status": "ok"/.test(second) ? "ok reply" : "other";
    replies[kind] = (replies[kind] ?? 0) + 1;
    if (kind === "other") failures.push(`control case ${i}: unexpected reply ${second.slice(0, 200)}`);
    assert.equal(gw.process.child.exitCode, null, `the gateway is alive after control case ${i}`);
  }
  assert.equal(await valid(), 200, "a valid request still succeeds");
  // Finished connections linger up to 5 s, swept once a second.
  let fdsAfter = await fdsOutsidePool();
  await waitFor(async () => (fdsAfter = await fdsOutsidePool()) <= fdsBefore, 60_000);
  const leftoverDirs = readdirSync(join(gw.runtimeDir, "sockets")).length;
  recordFigures("fuzz", { seed: SEED, httpCases: CASES, controlCases, statuses, controlReplies: replies, validInterleaved: interleaved, fdsBefore, fdsAfter, clientDirectoriesLeft: leftoverDirs - 1, failures: failures.length });
  assert.deepEqual(failures, []);
  assert.ok(fdsAfter <= fdsBefore, `descriptors outside the keep-alive pool: ${fdsBefore} before, ${fdsAfter} after`);
  assert.equal(leftoverDirs, 1, "only the registered route's directory is left");
});
