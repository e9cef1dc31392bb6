/**
 * `npm run demo`: the whole chain on loopback with embedded defaults. A
 * private sshd on a free port with throwaway keys (the system's ssh setup is
 * not touched), conductor-server, and conductor running a sample web app.
 * Prints the URL and the auth link, shows one request through the gateway,
 * and cleans everything up on Ctrl-C.
 *
 * @module
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { currentAccount } from "./helpers/accounts.ts";
import type { Cleanup } from "./helpers/cleanup.ts";
import { bin, fixture } from "./helpers/install.ts";
import { request } from "./helpers/http.ts";
import { startProcess, type TestProcess } from "./helpers/process.ts";
import { SSHD, startSshd } from "./helpers/sshd.ts";

const cleanups: Array<() => unknown> = [];
const cleanup: Cleanup = { after: (fn) => { cleanups.push(fn); } };
const say = (line = ""): void => { process.stdout.write(line + "\n"); };

async function main(): Promise<void> {
  if (!existsSync(SSHD)) {
    say("The demo needs OpenSSH's server: install it with 'apt-get install openssh-server' (Debian, Ubuntu)");
    say("or 'dnf install openssh-server' (Fedora, RHEL); it is only run privately, on a loopback port.");
    process.exit(1);
  }
  const me = currentAccount();
  say(`conductor demo: everything runs as ${me.name} on 127.0.0.1; Ctrl-C stops it and cleans up.\n`);

  const sshd = await startSshd(cleanup, { users: "current" });
  say(`1. private sshd on 127.0.0.1:${sshd.port} (throwaway keys)`);

  const work = mkdtempSync(join(tmpdir(), "conductor-demo-"));
  cleanup.after(() => rmSync(work, { recursive: true, force: true }));
  const port = await choosePort(8888);
  const gateway = startProcess(cleanup, process.execPath, [bin("conductor-server"), "-r", join(work, "run"), "--state-dir", join(work, "state"), "-p", String(port), "-b", "127.0.0.1", "--no-streams"]);
  await gateway.waitForJson((l) => l.msg === "gateway listening", 15_000, "stderr");
  say(`2. conductor-server on http://127.0.0.1:${port}/, control socket ${join(work, "run", "client")}`);

  const appSocket = join(work, "app.sock");
  const args = [bin("conductor"), "-k", "demo"];
  for (const o of sshd.clientOptions(null)) args.push("-o", o);
  args.push(`${me.name}@127.0.0.1:${sshd.port}${join(work, "run", "client")}`, appSocket, "--", process.execPath, fixture("demo_app"));
  // The client's service records go to the demo's directory too: nothing outside it changes.
  const client = startProcess(cleanup, process.execPath, args, { env: { XDG_STATE_HOME: join(work, "client-state") } });
  const live = await client.waitForJson((e) => e.state === "live" || e.state === "failed", 30_000);
  if (live.state === "failed") throw new Error(`conductor failed: ${live.reason}`);
  const config = live.config as { auth: string; urls: string[] };
  const url = `http://${config.urls[0]}/`;
  say(`3. conductor runs the sample app on ${appSocket} and published it:\n`);
  say(`   URL        ${url}`);
  say(`   auth link  http://${config.urls[0]}/_conductor/auth/${config.auth}?next=/`);
  say(`   curl       curl -H 'Host: ${config.urls[0]}' -b authorization=${config.auth} http://127.0.0.1:${port}/\n`);

  const ok = await request({ port, host: config.urls[0], path: "/", headers: { Cookie: `authorization=${config.auth}` } });
  const title = /<h1>(.*?)<\/h1>/.exec(ok.text)?.[1] ?? ok.text.slice(0, 60);
  say(`   through the gateway with the cookie:    ${ok.status} ${title}`);
  const denied = await request({ port, host: config.urls[0], path: "/" });
  say(`   through the gateway without the cookie: ${denied.status} (the auth link sets the cookie)\n`);
  say("Open the auth link in a browser on this machine (*.localhost names resolve to 127.0.0.1),");
  say("or run the curl line. The client's JSON events:\n");
  for (const line of client.stdout) say("   " + line);
  say("\nWaiting; press Ctrl-C to stop.");
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => { stopping = true; resolve(); });
    process.once("SIGTERM", () => { stopping = true; resolve(); });
    client.exited.then(() => { if (!stopping) say("conductor exited unexpectedly."); resolve(); });
    gateway.exited.then(() => { if (!stopping) say("conductor-server exited unexpectedly."); resolve(); });
  });
  await shutdown(client);
}

let stopping = false;

async function shutdown(client?: TestProcess): Promise<void> {
  stopping = true;
  say("\nStopping: the app, conductor, conductor-server, sshd ...");
  await client?.stop();
  for (const fn of cleanups.reverse()) await fn();
  say("Done; nothing is left running.");
}

/** `preferred` when it is free, else any free port. */
function choosePort(preferred: number): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => {
      const any = createServer();
      any.listen(0, "127.0.0.1", () => {
        const port = (any.address() as { port: number }).port;
        any.close(() => resolve(port));
      });
    });
    srv.listen(preferred, "127.0.0.1", () => srv.close(() => resolve(preferred)));
  });
}

main().then(() => process.exit(0), async (err) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  await shutdown();
  process.exit(1);
});
