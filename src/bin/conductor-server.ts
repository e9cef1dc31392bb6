#!/usr/bin/env node
/**
 * conductor-server: the gateway. Parses the command line, starts the gateway,
 * maps signals (HUP reloads TLS, TERM/INT stop) and errors to exit codes
 * (1 runtime error, 2 usage error).
 *
 * @module
 */
import { parseServerArgs, SERVER_HELP } from "../server/cli.ts";
import { startGateway } from "../server/service.ts";
import { takeActivatedSocket } from "../server/socket_activation.ts";
import { ConductorError, messageOf } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { VERSION } from "../lib/version.ts";
import { siteStreamConfig, stopStreams } from "../streams/switchboard.ts";

async function main(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseServerArgs(argv, takeActivatedSocket(process.env, process.pid), process.env);
  } catch (err) {
    process.stderr.write(`conductor-server: ${messageOf(err)}\n`);
    return 2;
  }
  if (command.kind === "help") {
    process.stdout.write(SERVER_HELP);
    return 0;
  }
  if (command.kind === "version") {
    process.stdout.write(`conductor-server ${VERSION}\n`);
    return 0;
  }
  if (command.kind === "print-stream-config") {
    process.stdout.write(await siteStreamConfig(command.settings, command.runtimeDir));
    return 0;
  }
  const logger = createLogger({ verbose: command.verbose });
  if (command.kind === "stop-streams") {
    try {
      const running = await stopStreams(command.settings, command.runtimeDir, logger);
      logger.info(running ? "the streams' nginx stopped" : "no nginx of the streams was running", { runtimeDir: command.runtimeDir });
      return 0;
    } catch (err) {
      logger.error(messageOf(err));
      return 1;
    }
  }
  let gateway;
  try {
    gateway = await startGateway(command.options, logger);
  } catch (err) {
    logger.error(messageOf(err), { code: err instanceof ConductorError ? err.code : (err as NodeJS.ErrnoException).code });
    return 1;
  }
  process.on("SIGHUP", () => {
    gateway.reloadTls().catch((err) => logger.error(`${messageOf(err)}; keeping the previous TLS files`));
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info("stopping", { signal });
      resolve();
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  await gateway.close();
  logger.info("stopped");
  return 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  process.stderr.write(`conductor-server: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
