/**
 * Figures of the reliability tests: each test writes what it did as JSON to
 * test/output/reliability/NAME.json; `npm run reliability` renders them into
 * test/RELIABILITY.md.
 *
 * @module
 */
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { outputDir } from "../helpers/env.ts";

/** The directory the figures are written to. */
export const figuresDir = join(outputDir, "reliability");

/** Records the figures of one reliability test. */
export function recordFigures(name: string, figures: Record<string, unknown>): void {
  mkdirSync(figuresDir, { recursive: true });
  writeFileSync(join(figuresDir, `${name}.json`), JSON.stringify({ ...figures, recorded: new Date().toISOString() }, null, 2) + "\n");
}

/** A number from the environment (scaling a test up for a longer run), or `fallback`. */
export function envNumber(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

/** A small seeded random generator (mulberry32), so that a run can be repeated from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Open file descriptors of process `pid`. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
