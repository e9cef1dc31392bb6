/**
 * Checks made before a run starts anything: what would otherwise fail later,
 * after the app started, with a message that no longer names the cause.
 *
 * @module
 */
import { promises as fs, constants } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { tokenProblem } from "../lib/token.ts";
import type { ClientArgs } from "./cli.ts";

/** Why the run cannot start as asked (a usage error), or null. */
export async function preflight(args: ClientArgs, env: NodeJS.ProcessEnv): Promise<string | null> {
  if (env.CONDUCTOR_TOKEN !== undefined) {
    const problem = tokenProblem(env.CONDUCTOR_TOKEN);
    if (problem !== null) return `CONDUCTOR_TOKEN ${problem}; set it to at least 16 random characters, or unset it to have one made`;
  }
  const dir = dirname(args.appSocket);
  const st = await fs.stat(dir).catch(() => null);
  if (st === null || !st.isDirectory()) {
    return `the app socket's directory ${dir} ${st === null ? "does not exist" : "is not a directory"}: create it first (mkdir -p ${dir}) or choose another path`;
  }
  const ssh = env.CONDUCTOR_SSH || "ssh";
  if (!await findProgram(ssh, env.PATH ?? "")) {
    return env.CONDUCTOR_SSH
      ? `cannot run ${ssh}, named by CONDUCTOR_SSH: point it at an ssh program, or unset it to use ssh from PATH`
      : "cannot find ssh in PATH: install OpenSSH's client (Debian: openssh-client) or name the program in CONDUCTOR_SSH";
  }
  return null;
}

/** True when `program` (a path, or a name looked up in `path`) can be executed. */
async function findProgram(program: string, path: string): Promise<boolean> {
  const candidates = program.includes("/") ? [program] : path.split(delimiter).filter((d) => d !== "").map((d) => join(d, program));
  for (const candidate of candidates) {
    const st = await fs.stat(candidate).catch(() => null);
    if (st?.isFile() && await fs.access(candidate, constants.X_OK).then(() => true, () => false)) return true;
  }
  return false;
}
