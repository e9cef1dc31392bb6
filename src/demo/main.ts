/**
 * The demo, and a self-test of the whole chain on loopback, needing only
 * node and OpenSSH: a private sshd on a free port with throwaway keys (the
 * system's ssh setup is not touched), conductor-server, and conductor
 * running a sample web app, all as the user who runs it, with every file in
 * one temporary directory. It prints the URL and the auth link and sends a
 * request through the gateway with the cookie and one without; then it waits
 * for Ctrl-C, or with `--once` stops at once, exiting 0 when both requests
 * were answered as they should be.
 *
 * In a git checkout: `npm run demo` (unbuilt, through tsx). From the release
 * tarball: `make demo`, or `node lib/conductor/demo/main.js`; installed:
 * `node $(PREFIX)/lib/conductor/demo/main.js`.
 *
 * @module
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startChild, type Child } from "./child.ts";
import { freePort, SSHD, startPrivateSshd } from "./sshd.ts";

/** This file's extension: `.ts` when run unbuilt (tsx), `.js` when compiled. */
const EXT = import.meta.url.endsWith(".ts") ? ".ts" : ".js";

/** A module of the package beside this one, e.g. `../bin/conductor-server`, run with this node (and its loader flags). */
function program(relative: string): string[] {
  return [...process.execArgv, fileURLToPath(new URL(relative + EXT, import.meta.url))];
}

const say = (line = ""): void => { process.stdout.write(line + "\n"); };

/** Runs the demo; resolves with the exit status. */
async function main(argv: string[]): Promise<number> {
  const once = argv.includes("--once");
  if (argv.some((a) => a !== "--once")) {
    process.stderr.write("Usage: node demo/main.js [--once]\n  --once  show the chain working, then stop and clean up (a self-test: exit 0 when it works)\n");
    return 2;
  }
  if (!existsSync(SSHD)) {
    say(`The demo needs OpenSSH's server at ${SSHD}: install it with 'apt-get install openssh-server' (Debian, Ubuntu)`);
    say("or 'dnf install openssh-server' (Fedora, RHEL); it is only run privately, on a loopback port.");
    return 1;
  }
  const work = mkdtempSync(join(tmpdir(), "conductor-demo-"));
  const children: Child[] = [];
  try {
    const sshd = await startPrivateSshd(work);
    children.push(sshd.process);
    say(`conductor demo: everything runs as ${sshd.user} on 127.0.0.1, with its files in ${work}; ${once ? "it stops by itself" : "Ctrl-C stops it and cleans up"}.\n`);
    say(`1. private sshd on 127.0.0.1:${sshd.port} (throwaway keys)`);

    const port = await freePort(8888);
    const run = join(work, "run");
    const gateway = startChild(process.execPath, [...program("../bin/conductor-server"), "-r", run, "--state-dir", join(work, "state"), "-p", String(port), "-b", "127.0.0.1", "--no-streams"]);
    children.push(gateway);
    await gateway.waitForJson((l) => l.msg === "gateway listening", 30_000, "stderr");
    say(`2. conductor-server on http://127.0.0.1:${port}/, control socket ${join(run, "client")}`);

    const appSocket = join(work, "app.sock");
    const args = [...program("../bin/conductor"), "-k", "demo", ...sshd.clientOptions.flatMap((o) => ["-o", o]),
      `${sshd.user}@127.0.0.1:${sshd.port}${join(run, "client")}`, appSocket, "--", process.execPath, ...program("./app")];
    // The client's records and SSH control sockets go to the demo's directory too: nothing outside it changes.
    const client = startChild(process.execPath, args, { XDG_STATE_HOME: join(work, "client-state"), XDG_RUNTIME_DIR: "", TMPDIR: work });
    children.push(client);
    const live = await client.waitForJson((e) => e.state === "live" || e.state === "failed", 60_000);
    if (live.state === "failed") throw new Error(`conductor failed: ${live.reason}`);
    const { auth, urls } = live.config as { auth: string; urls: string[] };
    say(`3. conductor runs the sample app on ${appSocket} and published it:\n`);
    say(`   URL        http://${urls[0]}/`);
    say(`   auth link  http://${urls[0]}/_conductor/auth/${auth}?next=/`);
    say(`   curl       curl -H 'Host: ${urls[0]}' -b authorization=${auth} http://127.0.0.1:${port}/\n`);

    const ok = await get(port, urls[0], `authorization=${auth}`);
    say(`   through the gateway with the cookie:    ${ok.status} ${/<h1>(.*?)<\/h1>/.exec(ok.text)?.[1] ?? ok.text.slice(0, 60)}`);
    const denied = await get(port, urls[0]);
    say(`   through the gateway without the cookie: ${denied.status} (the auth link sets the cookie)\n`);
    if (once) {
      const works = ok.status === 200 && denied.status === 403;
      say(works ? "The chain works." : "The chain does NOT work as it should: see the statuses above.");
      return works ? 0 : 1;
    }
    say("Open the auth link in a browser on this machine (*.localhost names resolve to 127.0.0.1),");
    say("or run the curl line. The client's JSON events:\n");
    for (const line of client.stdout) say("   " + line);
    say("\nWaiting; press Ctrl-C to stop.");
    const why = await new Promise<string>((resolve) => {
      for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => resolve(""));
      client.exited.then(() => resolve("conductor exited unexpectedly."));
      gateway.exited.then(() => resolve("conductor-server exited unexpectedly."));
    });
    if (why !== "") say(why);
    return why === "" ? 0 : 1;
  } catch (err) {
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    say("\nStopping: the app, conductor, conductor-server, sshd ...");
    for (const child of children.reverse()) await child.stop();
    rmSync(work, { recursive: true, force: true });
    say("Done; nothing is left running.");
  }
}

/** GET / of `host` through the gateway on 127.0.0.1:`port`, with `cookie` if given. */
function get(port: number, host: string, cookie?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/", headers: { Host: host, ...(cookie === undefined ? {} : { Cookie: cookie }) } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => { text += chunk; });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end();
  });
}

main(process.argv.slice(2)).then((code) => process.exit(code));
