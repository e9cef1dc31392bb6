/**
 * One `conductor` run: checks the app socket, starts the app, keeps it
 * registered on the gateway (reconnecting with backoff after drops), and
 * tears everything down when the app ends or a signal arrives.
 *
 * @module
 */
import { ConductorError, messageOf } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { generateToken, hashToken } from "../lib/token.ts";
import { runtimeDir } from "../state/private_dir.ts";
import { serviceCertificate, type ServiceCertificate } from "../registry/certificate.ts";
import { findService, registryDir, removeService, saveService, selfPid, type ServiceRecord } from "../registry/services.ts";
import { clientSsh } from "../ssh/master.ts";
import { startApp, type App } from "./app.ts";
import type { ClientArgs } from "./cli.ts";
import { endingAtExit, type EventSink } from "./events.ts";
import type { Backoff } from "./publish.ts";
import { keepPublished } from "./publish.ts";
import { IdleWatch } from "./idle.ts";
import { DEFAULT_KEY } from "../control/protocol.ts";
import { GatewaySession, type Registration } from "./session.ts";
import { socketExposure } from "./privacy.ts";
import { inspectSocketPath, removeIfStale } from "./socket_owner.ts";

/** Exit statuses of `conductor`. */
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_SOCKET_IN_USE = 2;

/** What a run needs besides its arguments. */
export interface RunContext {
  env: NodeJS.ProcessEnv;
  events: EventSink;
  logger: Logger;
  /** Resolves when the run should stop (a signal arrived). */
  stopRequested: Promise<string>;
  /** Backoff between reconnections, in ms. */
  backoff?: Backoff;
}

/** Runs the app and keeps it published; resolves with the exit status. */
export async function runClient(args: ClientArgs, ctx: RunContext): Promise<number> {
  const { logger } = ctx;
  const events = endingAtExit(ctx.events, (event) => logger.debug("not printed: the run has exited", { event: event.state }));
  const env = { ...ctx.env };
  const token = env.CONDUCTOR_TOKEN ?? generateToken();
  delete env.CONDUCTOR_TOKEN;

  const registry = registryDir(env);
  const taken = await findService(registry, args.name).catch(() => null);
  if (taken !== null && taken.pid !== process.pid) {
    events({ state: "failed", reason: `Cannot start service '${args.name}': one of that name is live (pid ${taken.pid}, gateway ${taken.gateway}); stop it with 'conductor stop ${args.name}' or choose another --name` });
    return EXIT_ERROR;
  }
  const inUse = await claimSocket(args.appSocket, args.replace, logger);
  if (inUse !== null) {
    events({ state: "failed", reason: inUse });
    return EXIT_SOCKET_IN_USE;
  }

  let dir: string;
  let tls: ServiceCertificate | undefined;
  try {
    dir = await runtimeDir(env);
    if (args.tls) {
      tls = await serviceCertificate(registry, args.name);
      env.CONDUCTOR_TLS_CERT = tls.cert;
      env.CONDUCTOR_TLS_KEY = tls.key;
    }
  } catch (err) {
    events({ state: "failed", reason: messageOf(err) });
    return EXIT_ERROR;
  }
  let app: App;
  try {
    app = await startApp({ command: args.command, socket: args.appSocket, env, events });
  } catch (err) {
    events({ state: "failed", reason: messageOf(err) });
    return EXIT_ERROR;
  }

  // Watched from the start: an app that exits before it ever listens is an error whatever its status.
  let listened = false;
  app.ready().then(() => { listened = true; }, () => {});
  const stopWaiting = reportWaiting(args.appSocket, args.startTimeoutMs, events, () => listened || app.done);
  let warnedExposure = false;
  // --idle-timeout, and the gateway's own --max-idle: the run ends as after a signal, and exits 0.
  let endIdle!: () => void;
  const idleEnded = new Promise<"idle">((resolve) => { endIdle = () => resolve("idle"); });
  const idleWatch = args.idleTimeoutMs === null ? null : new IdleWatch(args.idleTimeoutMs, (seconds) => {
    stopping = true;
    events({ state: "idle", seconds });
    endIdle();
  });
  const onControl = (message: Record<string, unknown>): void => {
    if (message.op === "activity" && typeof message.idle === "number") idleWatch?.activity(message.idle);
    if (message.op === "close" && !stopping) {
      stopping = true;
      idleWatch?.stop();
      const reason = typeof message.reason === "string" ? message.reason : "the gateway closed the route";
      events({ state: "idle", seconds: typeof message.idle === "number" ? message.idle : 0, reason });
      endIdle();
    }
  };
  let warnedActivity = false;
  const session = new GatewaySession({
    ssh: clientSsh(env, args),
    appSocket: args.appSocket,
    key: args.key,
    name: args.name,
    liveExtra: tls === undefined ? undefined : { fingerprint: tls.fingerprint },
    tcp: args.tcp ? { port: args.port } : undefined,
    token,
    authHash: hashToken(token),
    runtimeDir: dir,
    appReady: async () => {
      await app.ready();
      if (!warnedExposure) {
        warnedExposure = true;
        const exposure = await socketExposure(args.appSocket);
        if (exposure !== null) logger.warn(exposure, { socket: args.appSocket });
      }
    },
    events,
    logger,
    onControl,
  });

  let stopping = false;
  const stop = ctx.stopRequested.then((signal) => {
    stopping = true;
    logger.debug("stopping", { signal });
    return "signal" as const;
  });
  const appEnded = app.exited.then(() => "app" as const);
  let startTimer: NodeJS.Timeout | undefined;
  const notStarted = new Promise<"start">((resolve) => { startTimer = setTimeout(() => resolve("start"), args.startTimeoutMs); });
  app.ready().finally(() => clearTimeout(startTimer)).catch(() => {});
  const ended = Promise.race([stop, appEnded, idleEnded, notStarted]);

  const started = new Date().toISOString();
  const record = (registration: Registration): ServiceRecord => ({
    name: args.name, kind: args.tcp ? "tcp" : "http", key: args.key ?? DEFAULT_KEY, gateway: args.gateway, urls: registration.urls, scheme: registration.scheme,
    ...(registration.port === undefined ? {} : { address: registration.address, port: registration.port }),
    token, ...selfPid(), started, socket: args.appSocket, ...(tls === undefined ? {} : { tls }),
  });
  const onLive = (registration: Registration): Promise<void> => {
    if (idleWatch !== null && registration.activity) idleWatch.start();
    else if (idleWatch !== null) {
      idleWatch.pause();
      if (!warnedActivity) logger.warn("this gateway does not report browser activity (an older conductor-server): --idle-timeout is not armed", { gateway: args.gateway });
      warnedActivity = true;
    }
    return saveService(registry, record(registration)).catch((err) => logger.warn("cannot record the service for show and list", { dir: registry, error: messageOf(err) }));
  };
  const published = keepPublished(session, { events, logger, done: () => app.done || stopping, ended, onLive, backoff: ctx.backoff })
    .then(() => "published" as const, (err: unknown) => {
      events({ state: "failed", reason: messageOf(err) });
      return "failed" as const;
    });

  const why = await Promise.race([ended, published]);
  stopping = true;
  clearTimeout(startTimer);
  stopWaiting();
  idleWatch?.stop();
  if (why === "start") {
    events({ state: "failed", reason: `Cannot publish the app: it did not listen on ${args.appSocket} within ${args.startTimeoutMs / 1000} s (--start-timeout); check that its command makes it listen there (CONDUCTOR_SOCKET holds the path), or give it longer` });
  }
  const status = await app.stop();
  const neverListened = why === "app" && !listened;
  if (neverListened) {
    events({ state: "failed", reason: `Cannot publish the app: it exited (status ${status}) before listening on ${args.appSocket}; check that its command makes it listen there (CONDUCTOR_SOCKET holds the path)` });
  }
  events({ state: "exit", status });
  // A crashed app may come back (a supervisor, a requeued job): then the gateway keeps saying "try again" for a while.
  const crashed = why === "app" && status !== 0;
  await session.close(!crashed).catch((err) => logger.warn("cannot close the SSH session cleanly", { error: messageOf(err) }));
  await removeService(registry, args.name, process.pid).catch(() => {});
  await removeIfStale(args.appSocket).catch(() => {});
  if (why === "failed" || why === "start" || neverListened) return EXIT_ERROR;
  if (why === "signal" || why === "idle") return EXIT_OK;
  return status === 0 ? EXIT_OK : EXIT_ERROR;
}

/**
 * Reports that conductor waits for the app to listen on `socket`, with the
 * start timeout: at once, then every minute, until `listening()`.
 * Returns what stops it.
 */
function reportWaiting(socket: string, timeoutMs: number, events: EventSink, listening: () => boolean): () => void {
  const since = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const report = (): void => {
    if (listening()) return;
    events({ state: "waiting", socket, timeout: timeoutMs / 1000, waited: Math.round((Date.now() - since) / 1000) });
    timer = setTimeout(report, 60_000);
  };
  report();
  return () => clearTimeout(timer);
}

/**
 * Makes way for the app socket: a socket nobody listens on is removed, a
 * listener of the user's is stopped with `replace`; returns why the path
 * cannot be used (exit status 2), or null. Nothing but a socket is ever removed.
 */
async function claimSocket(path: string, replace: boolean, logger: Logger): Promise<string | null> {
  try {
    const state = await inspectSocketPath(path);
    if (state.kind === "other") return `Cannot start the app: ${path} is not a socket (it is ${state.what}); choose another path`;
    if (state.kind === "live" && state.pids.length === 0) return `Cannot start the app: ${path} is in use by a process you cannot see; choose another socket path`;
    if (state.kind === "live" && !replace) return `Cannot start the app: ${path} is in use by pid ${state.pids.join(", ")}; stop it, or run with --replace`;
    if (state.kind === "live") await stopListeners(path, state.pids, logger);
    if (state.kind === "stale") logger.debug("removing stale socket", { path });
    await removeIfStale(path);
    return null;
  } catch (err) {
    return messageOf(err);
  }
}

/** Stops the user's processes listening on `path`: SIGTERM, SIGKILL after 10 s. */
async function stopListeners(path: string, pids: number[], logger: Logger): Promise<void> {
  for (const pid of pids) {
    logger.info("replacing the process listening on the socket", { path, pid });
    try {
      process.kill(pid, "SIGTERM");
    } catch { /* gone */ }
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    const now = await inspectSocketPath(path);
    if (now.kind !== "live") return;
    if (Date.now() > deadline) {
      for (const pid of now.pids) try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
      if (Date.now() > deadline + 5000) {
        throw new ConductorError("CONDUCTOR_ERR_SOCKET_IN_USE", `Cannot replace the process on ${path}: it does not stop; stop it yourself (kill -9 ${now.pids.join(" ")})`);
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
