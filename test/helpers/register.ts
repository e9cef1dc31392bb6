/**
 * Registers a route the way the original client does, without SSH, through
 * the fixture `test/fixtures/client.ts` running as a test user.
 *
 * @module
 */
import type { Cleanup } from "./cleanup.ts";
import type { AccountName } from "./accounts.ts";
import { fixture } from "./install.ts";
import { startProcess, type TestProcess } from "./process.ts";

/** A registered (or refused) fixture client. */
export interface Registration {
  process: TestProcess;
  banner: Record<string, unknown>;
  reply: Record<string, unknown>;
  /** Ends the registration (closes the control connection, without a goodbye) and waits for the client to exit. */
  end(): Promise<void>;
  /** Ends the registration with the goodbye line (nothing is kept for it) and waits for the client to exit. */
  goodbye(): Promise<void>;
}

/** Options of {@link register}. */
export interface RegisterOptions {
  key: string;
  token: string;
  /** Run the client as this user (when root); null runs it as the suite's own user. Default alice. */
  user?: AccountName | null;
  /** What to place in the directory; see the fixture. Default "app". */
  mode?: string;
  arg?: string;
  /** Fields added to the config line (extensions, e.g. `{ kind: "tcp" }`). */
  extra?: Record<string, unknown>;
}

/** Starts a fixture client against `controlPath` and waits for the server's reply. */
export async function register(t: Cleanup, controlPath: string, options: RegisterOptions): Promise<Registration> {
  const args = [fixture("client"), controlPath, options.key, options.token, options.mode ?? "app"];
  if (options.arg !== undefined) args.push(options.arg);
  const env = options.extra === undefined ? undefined : { FIXTURE_CONFIG_EXTRA: JSON.stringify(options.extra) };
  const proc = startProcess(t, process.execPath, args, { user: options.user === undefined ? "alice" : options.user ?? undefined, stdin: true, env });
  const banner = await proc.waitForJson((l) => l.event === "banner");
  const reply = await proc.waitForJson((l) => l.event === "reply" || l.event === "closed");
  return {
    process: proc,
    banner,
    reply,
    end: async () => {
      proc.child.stdin?.end();
      await proc.exited;
    },
    goodbye: async () => {
      proc.child.stdin?.write("goodbye\n");
      await proc.exited;
    },
  };
}
