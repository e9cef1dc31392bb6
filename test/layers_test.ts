/**
 * The layers of src/: each folder imports only from the folders docs/ARCHITECTURE.md
 * puts below it, so that the document and the code cannot drift apart.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { test } from "node:test";
import { repoRoot } from "./helpers/env.ts";

const src = join(repoRoot, "src");

/** The layers of the ```layers block of docs/ARCHITECTURE.md: folder → rank, 0 at the top. */
function documentedLayers(): Map<string, number> {
  const text = readFileSync(join(repoRoot, "docs", "ARCHITECTURE.md"), "utf8");
  const block = /```layers\n([\s\S]*?)```/.exec(text);
  assert.ok(block !== null, "docs/ARCHITECTURE.md has a ```layers block");
  const ranks = new Map<string, number>();
  block[1].trim().split("\n").forEach((line, rank) => {
    for (const folder of line.trim().split(/\s+/)) ranks.set(folder, rank);
  });
  return ranks;
}

/** The wire format of the control socket, which both sides import. */
const WIRE = new Set(["control/protocol.ts", "control/lines.ts"]);

/** Every .ts file under `dir`, relative to src/. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sources(path) : entry.name.endsWith(".ts") ? [relative(src, path)] : [];
  });
}

/** The layer of a file: its top folder, or its name for a file at the top (mod.ts → mod). */
function layerOf(file: string): string {
  return file.includes("/") ? file.slice(0, file.indexOf("/")) : file.replace(/\.ts$/, "");
}

test("every import in src/ points down the layers of docs/ARCHITECTURE.md", () => {
  const ranks = documentedLayers();
  const files = sources(src);
  const violations: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    assert.ok(ranks.has(from), `${file}: its folder ${from} is in no layer of docs/ARCHITECTURE.md`);
    const text = readFileSync(join(src, file), "utf8");
    for (const m of text.matchAll(/^(?:import|export)\b[^;]*?from "(\.[^"]+)"/gm)) {
      const target = relative(src, join(dirname(join(src, file)), m[1]));
      const to = layerOf(target);
      if (to === from) continue;
      if (WIRE.has(target) && ranks.get(from)! < ranks.get("control")!) continue;
      if (!(ranks.get(to)! > ranks.get(from)!)) violations.push(`${file} imports ${target} (${from} may not import ${to})`);
    }
  }
  assert.deepEqual(violations, []);
});

test("the wire modules import nothing but lib/ and each other", () => {
  for (const file of WIRE) {
    const text = readFileSync(join(src, file), "utf8");
    for (const m of text.matchAll(/from "(\.[^"]+)"/g)) {
      const target = relative(src, join(dirname(join(src, file)), m[1]));
      assert.ok(layerOf(target) === "lib" || WIRE.has(target), `${file} imports ${target}`);
    }
  }
});
