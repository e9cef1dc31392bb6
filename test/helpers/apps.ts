/**
 * The real apps the end-to-end tests run, from Debian's packages, and why a
 * test is skipped when one is missing (CI installs them all).
 *
 * @module
 */
import { existsSync } from "node:fs";

/** Programs by name, with the Debian package that brings each. */
const PROGRAMS = {
  "jupyter-server": { path: "/usr/bin/jupyter-server", package: "jupyter-server python3-ipykernel" },
  gunicorn: { path: "/usr/bin/gunicorn", package: "gunicorn" },
  websockify: { path: "/usr/bin/websockify", package: "websockify" },
  chromium: { path: "/usr/bin/chromium", package: "chromium" },
  python3: { path: "/usr/bin/python3", package: "python3" },
  "redis-server": { path: "/usr/bin/redis-server", package: "redis-server" },
  "redis-cli": { path: "/usr/bin/redis-cli", package: "redis-tools" },
} as const;

/** The absolute path of a program. */
export function program(name: keyof typeof PROGRAMS): string {
  return PROGRAMS[name].path;
}

/** A skip reason naming the package to install, or false when every program is there. */
export function missing(...names: Array<keyof typeof PROGRAMS>): string | false {
  const absent = names.filter((n) => !existsSync(PROGRAMS[n].path));
  if (absent.length === 0) return false;
  return `${absent.join(", ")} not installed (apt-get install ${absent.map((n) => PROGRAMS[n].package).join(" ")})`;
}
