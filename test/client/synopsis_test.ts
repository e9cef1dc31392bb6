/**
 * Each form of `conductor` (a run and every verb) takes the same options in
 * the option table the parser reads, in `conductor --help`'s usage lines and
 * in conductor(1)'s SYNOPSIS, so that neither page can drift from the code.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CLIENT_HELP, OPTIONS, VERBS, type Context } from "../../src/client/cli.ts";
import { repoRoot } from "../helpers/env.ts";

const CONTEXTS: Context[] = ["run", ...VERBS];
const SPECS: Record<string, { short?: string; for: readonly Context[] }> = OPTIONS;
/** Long option names by their one-letter form. */
const LONG_OF = new Map(Object.entries(SPECS).flatMap(([name, spec]) => (spec.short === undefined ? [] : [[spec.short, name] as const])));

/** The options the table gives `context`; a verb's forms leave out --help, which every form takes. */
function tableOptions(context: Context): string[] {
  return Object.keys(SPECS).filter((name) => SPECS[name].for.includes(context) && (context === "run" || name !== "help")).sort();
}

/** The options of each form in conductor(1)'s SYNOPSIS: `Fl \-name`, or letters `Fl hrVv`. */
function synopsisOptions(): Map<Context, string[]> {
  const page = readFileSync(join(repoRoot, "man", "conductor.1"), "utf8");
  const synopsis = page.slice(page.indexOf(".Sh SYNOPSIS"), page.indexOf(".Sh DESCRIPTION"));
  const forms = new Map<Context, string[]>();
  for (const form of synopsis.split(/^\.Nm$/m).slice(1)) {
    const verb = /^\n\.Cm (\w+)/.exec(form)?.[1];
    const names = [...form.matchAll(/Fl (\\-[a-z-]+|[A-Za-z]+)/g)].flatMap(([, flag]) =>
      flag.startsWith("\\-") ? [flag.slice(2)] : [...flag].map((letter) => LONG_OF.get(letter) ?? `-${letter}?`));
    forms.set((verb ?? "run") as Context, [...new Set(names)].sort());
  }
  return forms;
}

/** The options of each verb's usage line in --help (the run's line says [options]: its options are listed below it). */
function helpOptions(): Map<Context, string[]> {
  const usage = CLIENT_HELP.slice(0, CLIENT_HELP.indexOf("\n\n"));
  const forms = new Map<Context, string[]>();
  for (const form of usage.split(/\n(?= {7}conductor )/)) {
    const verb = /conductor (\S+)/.exec(form)![1];
    const names = [...form.matchAll(/\[(--[a-z-]+|-[A-Za-z])\b/g)].map(([, flag]) => (flag.startsWith("--") ? flag.slice(2) : LONG_OF.get(flag[1]) ?? flag));
    forms.set((VERBS as readonly string[]).includes(verb) ? verb as Context : "run", [...new Set(names)].sort());
  }
  const runOptions = CLIENT_HELP.slice(CLIENT_HELP.indexOf("Options of a run:"), CLIENT_HELP.indexOf("\nCommands:"));
  forms.set("run", [...runOptions.matchAll(/^ {2,6}(?:-[A-Za-z], )?--([a-z-]+)/gm)].map((m) => m[1]).sort());
  return forms;
}

test("conductor(1)'s SYNOPSIS gives every form of conductor the options the parser takes there", () => {
  const synopsis = synopsisOptions();
  assert.deepEqual([...synopsis.keys()].sort(), [...CONTEXTS].sort(), "every verb has its SYNOPSIS line");
  for (const context of CONTEXTS) assert.deepEqual(synopsis.get(context), tableOptions(context), `conductor ${context}`);
});

test("conductor --help's usage lines give every form of conductor the options the parser takes there", () => {
  const help = helpOptions();
  assert.deepEqual([...help.keys()].sort(), [...CONTEXTS].sort(), "every verb has its usage line");
  for (const context of CONTEXTS) assert.deepEqual(help.get(context), tableOptions(context), `conductor ${context}`);
});
