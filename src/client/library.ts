/**
 * The registry for programs: publish an app that already listens on a
 * socket, and show, verify or list the user's live services, without the
 * command line.
 *
 * @module
 */
import { probeSocket } from "../lib/socket_check.ts";
import { DEFAULT_KEY, normalizeKey, normalizeName } from "../control/protocol.ts";
import { silentLogger } from "../lib/log.ts";
import { ConductorError } from "../lib/errors.ts";
import { generateToken, hashToken, MIN_TOKEN_LENGTH, tokenProblem } from "../lib/token.ts";
import { authLink, findService, keyMatches, listServices, registryDir, removeService, saveService, selfPid, type ServiceRecord } from "../registry/services.ts";
import { parseDestination } from "../ssh/destination.ts";
import { clientSsh } from "../ssh/master.ts";
import { runtimeDir } from "../state/private_dir.ts";
import type { ClientEvent } from "./events.ts";
import { keepPublished } from "./publish.ts";
import { GatewaySession, type Registration } from "./session.ts";

/** Options of {@link register}. */
export interface RegisterOptions {
  /** The gateway, `[user@]host[:port][/path/to/client.sock]`. */
  gateway: string;
  /** The app's socket; the app must be listening on it. */
  socket: string;
  /** Route key. Default: none (the gateway uses "none"). */
  key?: string;
  /** Registry name. Default: the key. */
  name?: string;
  /** The token, at least 16 characters a cookie can carry. Default: 32 random characters. */
  token?: string;
  /** `-o` options for ssh. */
  sshOptions?: string[];
  /** Receives the same events `conductor` prints. */
  onEvent?: (event: ClientEvent) => void;
  /** Environment (state directories, CONDUCTOR_SSH). Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/** A service published by {@link register}. */
export interface Registered {
  name: string;
  urls: string[];
  token: string;
  /** The link that opens the service in a browser. */
  authLink: string;
  /** Unregisters, stops using SSH and removes the record. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Publishes the app listening on `options.socket` on the gateway and keeps
 * it published (reconnecting after drops) until `close()`. Resolves once it
 * is live; rejects with the reason when the first registration fails.
 *
 * @example
 * ```ts
 * import { register } from "conductor";
 * const service = await register({ gateway: "gw.example.org", socket: "/home/ann/app.sock", key: "app" });
 * console.log(service.authLink);
 * // ... later
 * await service.close();
 * ```
 */
export async function register(options: RegisterOptions): Promise<Registered> {
  const env = options.env ?? process.env;
  const key = options.key === undefined ? null : normalizeKey(options.key);
  const name = options.name === undefined ? key ?? DEFAULT_KEY : normalizeName(options.name);
  const token = options.token ?? generateToken();
  const problem = tokenProblem(token);
  if (problem !== null) throw new ConductorError("CONDUCTOR_ERR_USAGE", `Cannot register: the token ${problem}; give at least ${MIN_TOKEN_LENGTH} random characters, or none to have one made`);
  const registry = registryDir(env);
  const session = new GatewaySession({
    ssh: clientSsh(env, { destination: parseDestination(options.gateway), sshOptions: options.sshOptions ?? [] }),
    appSocket: options.socket,
    key,
    name,
    token,
    authHash: hashToken(token),
    runtimeDir: await runtimeDir(env),
    appReady: () => probeSocket(options.socket),
    events: options.onEvent ?? (() => {}),
    logger: silentLogger,
  });
  let closed = false;
  let stop!: () => void;
  const ended = new Promise<void>((resolve) => { stop = resolve; });
  const started = new Date().toISOString();
  let first!: (r: Registration) => void;
  const firstLive = new Promise<Registration>((resolve) => { first = resolve; });
  const running = keepPublished(session, {
    events: options.onEvent ?? (() => {}),
    logger: silentLogger,
    done: () => closed,
    ended,
    onLive: async (registration) => {
      const record: ServiceRecord = {
        name, kind: "http", key: key ?? DEFAULT_KEY, gateway: options.gateway, urls: registration.urls, scheme: registration.scheme,
        token, ...selfPid(), started, socket: options.socket,
      };
      await saveService(registry, record).catch(() => {});
      first(registration);
    },
  });
  const registration = await Promise.race([firstLive, running.then(() => { throw new Error("Cannot register: stopped before going live"); })]).catch(async (err) => {
    closed = true;
    await session.close();
    throw err;
  });
  return {
    name,
    urls: registration.urls,
    token,
    authLink: `${registration.scheme}://${registration.urls[0]}/_conductor/auth/${token}`,
    async close() {
      if (closed) return;
      closed = true;
      stop();
      await running.catch(() => {});
      await session.close();
      await removeService(registry, name, process.pid).catch(() => {});
    },
  };
}

/** The user's live service `name`, with its token and auth link, or null. */
export async function show(name: string, env: NodeJS.ProcessEnv = process.env): Promise<(ServiceRecord & { authLink: string }) | null> {
  const record = await findService(registryDir(env), normalizeName(name));
  return record === null ? null : { ...record, authLink: authLink(record) };
}

/** True when `key` is the magic key of the user's live service `name` (constant time). */
export async function verify(name: string, key: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const record = await findService(registryDir(env), normalizeName(name));
  return record !== null && keyMatches(record, key);
}

/** The user's live services whose name matches `pattern` (`*` and `?`), without tokens. */
export async function list(pattern = "*", env: NodeJS.ProcessEnv = process.env): Promise<Array<Omit<ServiceRecord, "token">>> {
  return (await listServices(registryDir(env), pattern)).map(({ token: _token, ...rest }) => rest);
}
