/**
 * `conductor check [user@]gateway`: the way to a gateway, step by step, as a
 * run takes it: the SSH master connection, the forward of the gateway's
 * control socket, its banner. Each step is printed as it goes, then the
 * gateway's version and domains; a step that fails is named, with its reason.
 *
 * @module
 */
import { messageOf } from "../lib/errors.ts";
import { runtimeDir } from "../state/private_dir.ts";
import { clientSsh, type SshTarget } from "../ssh/master.ts";
import type { ClientEvent } from "./events.ts";
import { querySession } from "./session.ts";
import type { VerbContext } from "./verbs.ts";

/** The steps of a check, in order, as they are named in its output. */
const STEPS = ["ssh", "control socket", "banner"] as const;

/** Checks the way to `target`; prints what each step found; resolves with the exit status (0 all went through, 1 a step failed). */
export async function checkGateway(target: SshTarget, ctx: VerbContext): Promise<number> {
  let step: typeof STEPS[number] = "ssh";
  const say = (label: string, text: string): void => ctx.out(`${label.padEnd(16)}${text}\n`);
  const d = target.destination;
  const onEvent = (event: ClientEvent): void => {
    if (event.state === "connecting") {
      say("ssh", `connecting to ${d.host}${d.port === null ? "" : ` port ${d.port}`}${d.user === null ? "" : ` as ${d.user}`} (ConnectTimeout ${event.timeout} s)`);
    } else if (event.state === "connect") {
      say("ssh", "connected");
      step = "control socket";
    } else if (event.state === "controlConnect") {
      say("control socket", `${event.path} answered`);
      step = "banner";
    }
  };
  let session;
  try {
    session = querySession({ ssh: clientSsh(ctx.env, target), runtimeDir: await runtimeDir(ctx.env), events: onEvent, logger: ctx.logger });
  } catch (err) {
    ctx.err(`conductor: check failed before ssh: ${messageOf(err)}\n`);
    return 1;
  }
  try {
    for (const [label, text] of describeBanner(await session.banner())) say(label, text);
    say("ok", `runs can publish on ${d.host}`);
    return 0;
  } catch (err) {
    ctx.err(`conductor: check failed at the ${step} step: ${messageOf(err)}\n`);
    return 1;
  } finally {
    await session.close().catch(() => {});
  }
}

/**
 * What `check` prints of a banner: the directory it assigned, and the
 * gateway's version and domain patterns (`version` and `domains`, fields
 * that gateways which do not send them leave out).
 */
export function describeBanner(banner: Record<string, unknown>): Array<[string, string]> {
  const domains = Array.isArray(banner.domains) ? banner.domains.filter((x): x is string => typeof x === "string") : [];
  return [
    ["banner", `ok, directory ${String(banner.directory)}`],
    ["gateway", typeof banner.version === "string" ? `conductor-server ${banner.version}` : "version not told (its banner does not say)"],
    ["domains", domains.length > 0 ? domains.join(" ") : "not told (its banner does not say)"],
  ];
}
