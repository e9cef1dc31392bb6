/**
 * Durations written as in sshd_config(5): a number of seconds, or numbers
 * with units s, m, h, d, w, summed (`90`, `30s`, `15m`, `1h30m`).
 *
 * @module
 */
import { ConductorError } from "./errors.ts";

const UNIT_SECONDS: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** Parses `text` into seconds; throws `CONDUCTOR_ERR_USAGE` naming `option` and the accepted forms. */
export function parseDuration(text: string, option: string): number {
  const parts = /^(?:[0-9]+[smhdwSMHDW]?)+$/.test(text) ? [...text.matchAll(/([0-9]+)([smhdwSMHDW]?)/g)] : [];
  const seconds = parts.reduce((sum, [, n, unit]) => sum + Number(n) * UNIT_SECONDS[unit.toLowerCase()], 0);
  if (parts.length === 0 || seconds <= 0 || !Number.isSafeInteger(seconds)) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE",
      `${option} takes a duration above zero, as in sshd_config: 90 (seconds), 30s, 15m, 2h, 1h30m; not '${text}'`);
  }
  return seconds;
}
