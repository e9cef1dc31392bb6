/**
 * Soak: conductor-server under steady load for a bounded time while its
 * clients keep reconnecting (alice's SSH master is killed every 10 seconds,
 * and bob registers and drops a route every second). Every request ends in a
 * checked success or a clean 5xx, and what the gateway holds stays flat: the
 * memory its objects still reach after a full garbage collection (read
 * through its inspector) at the end of the run against a quarter into it,
 * and its open file descriptors, the last quarter of the run against the
 * second. Resident memory is reported, not judged: V8 grows its heap lazily
 * and keeps what it took, so on a slow machine it still climbs after the
 * warm-up without anything leaking. At the end only the live routes and
 * their directories are left.
 *
 * CONDUCTOR_SOAK_SECONDS sets the length (default 60; `npm run reliability`
 * runs longer).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { startConductor } from "../helpers/conductor.ts";
import { needsRoot } from "../helpers/env.ts";
import { startGateway } from "../helpers/gateway.ts";
import { request } from "../helpers/http.ts";
import { processesMatching } from "../helpers/procs.ts";
import { register } from "../helpers/register.ts";
import { sshdMissing, startSshd } from "../helpers/sshd.ts";
import { waitFor } from "../helpers/wait.ts";
import { startLoad } from "./load.ts";
import { defer } from "../helpers/cleanup.ts";
import { connectInspector, type LiveMemory } from "../helpers/inspector.ts";
import { envNumber, fdCount, recordFigures } from "./report.ts";

const SECONDS = envNumber("CONDUCTOR_SOAK_SECONDS", 60);
const MASTER_KILL_EVERY_MS = 10_000;
const CHURN_EVERY_MS = 1_000;

/** Resident memory of process `pid`, in KiB. */
function rssKib(pid: number): number {
  return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
}

function mib(bytes: number): number {
  return +(bytes / 1048576).toFixed(1);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

test(`soak: ${SECONDS} s of load with reconnecting clients; the gateway's memory and descriptors stay flat`, { skip: needsRoot || sshdMissing }, async (t) => {
  const sshd = await startSshd(t);
  const gw = await startGateway(t, { nodeArgs: ["--inspect=127.0.0.1:0"] });
  const pid = gw.process.pid;
  const inspector = await connectInspector(gw.process);
  defer(t, () => inspector.close());
  const runs = ["s1", "s2", "s3"].map((key) => startConductor(t, sshd, gw, { key, token: `soak-token-0000-${key}` }));
  const targets = await Promise.all(runs.map(async (run, i) => ({ host: (await run.live()).urls[0], token: `soak-token-0000-s${i + 1}` })));
  const status = async (): Promise<{ routesTotal: number; controlConnections: number }> =>
    JSON.parse((await request({ port: gw.port, host: targets[0].host, path: "/_conductor/status" })).text);

  const load = startLoad({ port: gw.port, targets, workers: 4, hangMs: 20_000, secure: false });
  const samples: Array<{ at: number; rss: number; fds: number }> = [];
  const started = Date.now();
  const deadline = started + SECONDS * 1000;
  let masterKills = 0;
  let churned = 0;
  let nextKill = started + MASTER_KILL_EVERY_MS;
  let liveEarly: LiveMemory | undefined;
  let liveLate: LiveMemory;
  try {
    while (Date.now() < deadline) {
      const tick = Date.now();
      samples.push({ at: tick - started, rss: rssKib(pid), fds: fdCount(pid) });
      if (liveEarly === undefined && tick - started >= SECONDS * 250) liveEarly = await inspector.liveMemory();
      if (tick >= nextKill) {
        nextKill += MASTER_KILL_EVERY_MS;
        for (const m of processesMatching(`-p ${sshd.port} -l ${sshd.loginName("alice")}`).filter((p) => p.cmdline.includes("ControlMaster=yes"))) {
          process.kill(m.pid, "SIGKILL");
          masterKills++;
        }
      }
      const reg = await register(t, gw.controlPath, { key: `churn${churned % 5}`, token: `churn-${churned}`, user: "bob" });
      assert.equal(reg.reply.status, "ok", JSON.stringify(reg.reply));
      await reg.end();
      await reg.process.exited;
      churned++;
      await new Promise((r) => setTimeout(r, Math.max(0, tick + CHURN_EVERY_MS - Date.now())));
    }
    // Under the same load as the early reading.
    liveLate = await inspector.liveMemory();
  } finally {
    await load.stop();
  }

  // Every run is back, and only their routes and directories are left.
  assert.ok(await waitFor(async () => {
    const s = await status();
    return s.routesTotal === runs.length && s.controlConnections === runs.length;
  }, 30_000), `the runs' routes, and only those, are registered: ${JSON.stringify(await status())}`);
  const socketsDir = join(gw.runtimeDir, "sockets");
  assert.ok(await waitFor(() => readdirSync(socketsDir).length === runs.length), `client directories left: ${readdirSync(socketsDir).length}`);

  const bad = load.outcomes.filter((o) => o.kind === "hang" || o.kind === "corrupt" || o.kind === "noAnswer" ||
    (o.kind === "status" && ![502, 503, 504].includes(o.status)));
  const ok = load.outcomes.filter((o) => o.kind === "ok").length;
  const early = samples.filter((s) => s.at >= SECONDS * 250 && s.at < SECONDS * 500);
  const late = samples.filter((s) => s.at >= SECONDS * 750);
  const figures = {
    seconds: SECONDS,
    requests: load.outcomes.length,
    ok,
    clean5xxOrCut: load.outcomes.length - ok - bad.length,
    masterKills,
    registrationsChurned: churned,
    rssMiBEarly: +(median(early.map((s) => s.rss)) / 1024).toFixed(1),
    rssMiBLate: +(median(late.map((s) => s.rss)) / 1024).toFixed(1),
    liveMiBEarly: mib(liveEarly!.heapUsed + liveEarly!.external),
    liveMiBLate: mib(liveLate.heapUsed + liveLate.external),
    fdsEarly: median(early.map((s) => s.fds)),
    fdsLate: median(late.map((s) => s.fds)),
    failures: bad.length,
  };
  recordFigures("soak", figures);
  assert.deepEqual(bad.slice(0, 10), [], `${bad.length} requests failed badly`);
  // The share of successes measures how fast this machine recovers from the master kills (it is reported, not judged);
  // what matters is that failures were clean, above, and that every route serves again, below.
  assert.ok(ok > 0, `requests succeed: ${ok} of ${load.outcomes.length}`);
  for (const target of targets) {
    const answer = await request({ port: gw.port, host: target.host, path: "/hello", headers: { Cookie: `authorization=${target.token}` } });
    assert.equal(answer.status, 200, `${target.host} serves after the soak`);
  }
  assert.ok(figures.fdsLate <= figures.fdsEarly * 1.2 + 16, `open descriptors grew: ${JSON.stringify(figures)}`);
  assert.ok(figures.liveMiBLate <= figures.liveMiBEarly * 1.1 + 2, `memory still reachable after a full collection grew: ${JSON.stringify(figures)}`);
});
