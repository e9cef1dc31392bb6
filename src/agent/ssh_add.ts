/**
 * ssh-add against one agent: whether it answers, its keys, loading keys,
 * locking and unlocking. The lock password reaches ssh-add only through the
 * askpass program (SSH_ASKPASS_REQUIRE=force, and DISPLAY for OpenSSH before
 * 8.4): never on a command line, never in an environment variable.
 *
 * @module
 */
import { spawn } from "node:child_process";
import type { AgentFiles } from "./files.ts";

/** How ssh-add ended and what it said. */
export interface SshAddResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs ssh-add with `args` against the agent of `files`; `interactive` lets it prompt on the terminal (a key's passphrase). */
export function sshAdd(files: AgentFiles, args: string[], options: { askpass?: boolean; interactive?: boolean } = {}): Promise<SshAddResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, SSH_AUTH_SOCK: files.socket };
  delete env.SSH_ASKPASS;
  if (options.askpass) Object.assign(env, { SSH_ASKPASS: files.askpass, SSH_ASKPASS_REQUIRE: "force", DISPLAY: process.env.DISPLAY || ":0" });
  return new Promise((resolve) => {
    const child = spawn("ssh-add", args, { env, stdio: options.interactive ? "inherit" : ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (c: string) => { stdout += c; });
    child.stderr?.setEncoding("utf8").on("data", (c: string) => { stderr += c; });
    child.on("error", (err) => resolve({ code: 127, stdout, stderr: `${err.message} (is OpenSSH's ssh-add installed?)` }));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** True when an agent answers on the socket (ssh-add -l exits 0 or 1, not 2). */
export async function agentAnswers(files: AgentFiles): Promise<boolean> {
  const { code } = await sshAdd(files, ["-l"]);
  return code === 0 || code === 1;
}
