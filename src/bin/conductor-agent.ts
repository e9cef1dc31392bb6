#!/usr/bin/env node
/**
 * conductor-agent: a long-lived ssh-agent that locks itself when idle.
 * Parses the command line and runs the command; exit codes 0 ok, 1 error,
 * 2 bad command line.
 *
 * @module
 */
import type { ChildProcess } from "node:child_process";
import { agentStatus, lockAgent, stopAgent, useAgent } from "../agent/agent.ts";
import { AGENT_HELP, parseAgentArgs } from "../agent/cli.ts";
import type { AgentFiles } from "../agent/files.ts";
import { agentDir, LOCKER_ENV, runLocker, spawnAgent } from "../agent/locker.ts";
import { agentAnswers, sshAdd } from "../agent/ssh_add.ts";
import { liveState, updateState, type AgentState } from "../agent/state.ts";
import { ConductorError, messageOf } from "../lib/errors.ts";
import { withLock } from "../state/lock.ts";
import { createLogger } from "../lib/log.ts";
import { VERSION } from "../lib/version.ts";

async function main(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseAgentArgs(argv, process.env);
  } catch (err) {
    process.stderr.write(`conductor-agent: ${messageOf(err)}\n`);
    return 2;
  }
  switch (command.kind) {
    case "help":
      process.stdout.write(AGENT_HELP);
      return 0;
    case "version":
      process.stdout.write(`conductor-agent ${VERSION}\n`);
      return 0;
    case "use":
    case "unlock":
      await useAgent(command.files);
      return 0;
    case "lock":
      await lockAgent(command.files);
      return 0;
    case "stop":
      if (!await stopAgent(command.files)) process.stderr.write(`conductor-agent: no agent ran on ${command.files.socket}; nothing is left of one\n`);
      return 0;
    case "status": {
      const status = await agentStatus(command.files);
      if (command.json) process.stdout.write(JSON.stringify(status) + "\n");
      else {
        process.stdout.write(`socket  ${status.socket}\nagent   pid ${status.pid} (locker pid ${status.lockerPid})\n` +
          `state   ${status.locked ? "locked" : "unlocked"}, unused for ${status.unusedSeconds} s (locks after ${status.idleSeconds} s)\n` +
          (status.locked ? "" : `keys    ${status.keys.length === 0 ? "(none)" : status.keys.join("\n        ")}\n`));
      }
      return 0;
    }
    case "start": {
      const { files, keys, json } = command;
      const announce = async (state: AgentState, adopted: boolean): Promise<void> => {
        if (keys.length > 0) {
          const added = await sshAdd(files, keys, { interactive: true });
          if (added.code !== 0) throw new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot load ${keys.join(", ")} into the agent (ssh-add exited ${added.code})`);
        }
        await updateState(files, (s) => ({ ...s, lastUse: Date.now() }));
        process.stdout.write(json
          ? JSON.stringify({ socket: files.socket, pid: state.agentPid, lockerPid: state.lockerPid, idleSeconds: state.idleSeconds, adopted }) + "\n"
          : `SSH_AUTH_SOCK='${files.socket}'; export SSH_AUTH_SOCK;\n`);
      };
      if (process.env[LOCKER_ENV] === "1") {
        return runLocker(files, command.idleSeconds, createLogger({ verbose: false }), (state) => announce(state, false));
      }
      const idle = ["--idle", `${command.idleSeconds}s`];
      await agentDir(files.dir);
      // One start at a time on a socket: the second adopts what the first made.
      const started = await withLock(`${files.socket}.start`, async () => {
        const running = await liveState(files);
        if (running !== null && await agentAnswers(files)) {
          if (command.foreground) {
            throw new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot start an agent in the foreground: a conductor-agent already runs on ${files.socket} (pid ${running.lockerPid}); stop that one first, or choose another --socket`);
          }
          return { state: running, child: null };
        }
        const locker = ["--foreground", ...idle, ...(command.foreground ? [...keys.flatMap((k) => ["--key", k]), ...(json ? ["--json"] : [])] : [])];
        const child = await spawnAgent(files, locker, !command.foreground);
        return { state: command.foreground ? null : await startDetached(files, child), child };
      }, { timeoutMs: 60_000 });
      if (command.foreground) {
        // Attached (a systemd user unit): the locker, under ssh-agent, loads the keys and prints; this waits for it.
        const child = started.child!;
        const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 1)));
        for (const name of ["SIGTERM", "SIGHUP"] as const) process.on(name, () => child.kill(name));
        process.on("SIGINT", () => {}); // Ctrl-C reaches the locker too, from the terminal.
        return exited;
      }
      await announce(started.state!, started.child === null);
      return 0;
    }
  }
}

/** Waits for the agent and locker started in the background (`child`) to answer. */
async function startDetached(files: AgentFiles, child: ChildProcess): Promise<AgentState> {
  child.unref();
  const deadline = Date.now() + 30_000;
  for (;;) {
    const state = await liveState(files);
    if (state !== null && state.lockerPid === child.pid && await agentAnswers(files)) return state;
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new ConductorError("CONDUCTOR_ERR_AGENT", `Cannot start the agent on ${files.socket}; run 'conductor-agent start --foreground' to see why`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  process.stderr.write(`conductor-agent: ${err instanceof ConductorError ? err.message : err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
