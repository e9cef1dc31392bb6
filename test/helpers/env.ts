/**
 * Where the tests run: the repository, the built files, and whether the
 * suite runs as root (then the gateway runs as user `conductor` and clients
 * as `alice` and `bob`, as in production).
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** True when the tests run as root and can act as other users. */
export const isRoot = process.geteuid?.() === 0;

/** The repository's top directory (tests run from dist/test/...). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** The compiled tree (`dist/`). */
export const distDir = join(repoRoot, "dist");

/** Where tests leave files for people to look at (screenshots, reports). */
export const outputDir = join(repoRoot, "test", "output");

/** Reason to skip tests that need a second uid. */
export const needsRoot = isRoot ? false : "needs root to run processes as other users (CI runs as root)";
