/**
 * The descriptors this process may open, read from the kernel's view of its limits.
 *
 * @module
 */
import { readFileSync } from "node:fs";

/** The soft limit of open files of this process (from /proc/self/limits), or null when it cannot be read or is unlimited. */
export function openFilesLimit(limits = "/proc/self/limits"): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync(limits, "utf8"));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}
