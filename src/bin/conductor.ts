#!/usr/bin/env node
/**
 * conductor: runs an app on a UNIX socket and publishes it on a conductor
 * gateway over SSH. Parses the command line, maps signals and errors to exit
 * codes (0 ok, 1 error, 2 socket path in use or not a socket, 2 also for a
 * bad command line).
 *
 * @module
 */
import { checkGateway } from "../client/check.ts";
import { CLIENT_HELP, parseClientArgs } from "../client/cli.ts";
import { jsonLinesSink } from "../client/events.ts";
import { preflight } from "../client/preflight.ts";
import { EXIT_ERROR, runClient } from "../client/run.ts";
import { runTunnel } from "../client/tunnel.ts";
import { listCommand, showService, stopService, verifyService, type VerbContext } from "../client/verbs.ts";
import { encodeLine } from "../control/protocol.ts";
import { clientSsh } from "../ssh/master.ts";
import { messageOf } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { VERSION } from "../lib/version.ts";

async function main(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseClientArgs(argv);
  } catch (err) {
    process.stderr.write(`conductor: ${messageOf(err)}\n`);
    return 2;
  }
  if (command.kind === "help") {
    process.stdout.write(CLIENT_HELP);
    return 0;
  }
  if (command.kind === "version") {
    process.stdout.write(`conductor ${VERSION}\n`);
    return 0;
  }
  const signalled = (): Promise<string> => new Promise<string>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => resolve(signal));
  });
  if (command.kind === "tunnel") {
    return runTunnel(clientSsh(process.env, command.ssh), command.forwards, {
      env: process.env,
      logger: createLogger({ verbose: command.verbose }),
      events: (event) => process.stdout.write(encodeLine(event)),
      stopRequested: signalled(),
    });
  }
  if (command.kind !== "run") {
    const ctx: VerbContext = {
      env: process.env,
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
      logger: createLogger({ verbose: "verbose" in command && command.verbose }),
    };
    try {
      switch (command.kind) {
        case "check": return await checkGateway(command.ssh, ctx);
        case "show": return await showService(command.name, command.json, ctx);
        case "verify": return await verifyService(command.name, command.key, ctx);
        case "stop": return await stopService(command.name, ctx);
        case "list": return await listCommand(command.pattern, command.json, command.gateway, ctx);
      }
    } catch (err) {
      process.stderr.write(`conductor: ${messageOf(err)}\n`);
      return EXIT_ERROR;
    }
  }
  const problem = await preflight(command.options, process.env);
  if (problem !== null) {
    process.stderr.write(`conductor: ${problem}\n`);
    return 2;
  }
  const logger = createLogger({ verbose: command.options.verbose });
  const stopRequested = signalled();
  return runClient(command.options, {
    env: process.env,
    events: jsonLinesSink((line) => process.stdout.write(line)),
    logger,
    stopRequested,
  });
}

main(process.argv.slice(2)).then(exit, (err) => {
  process.stderr.write(`conductor: ${err instanceof Error ? err.stack : String(err)}\n`);
  exit(EXIT_ERROR);
});

/** Exits once stdout has taken every event line. */
function exit(code: number): void {
  process.stdout.write("", () => process.exit(code));
}
