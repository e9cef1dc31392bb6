/**
 * The "app did not answer" log line is throttled per route, and says how
 * many lines it left out.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { logAppFailure } from "../../src/gateway/failure_log.ts";
import type { Route } from "../../src/gateway/routes.ts";
import { clock } from "../../src/lib/sweeper.ts";
import type { Fields, Logger } from "../../src/lib/log.ts";

function capture(): Logger & { lines: Array<[string, Fields | undefined]> } {
  const lines: Array<[string, Fields | undefined]> = [];
  const log = (msg: string, fields?: Fields): void => { lines.push([msg, fields]); };
  return { lines, verbose: false, debug: log, info: log, warn: log, error: log };
}

const route = (key: string) => ({ key, user: "ann" }) as Route;

test("logAppFailure() writes one line per route per 10 s, then counts what it left out", () => {
  const logger = capture();
  const lab = route("lab"), web = route("web");
  const start = clock.now;
  try {
    for (let i = 0; i < 5; i++) logAppFailure(logger, lab, { code: "ECONNREFUSED" });
    logAppFailure(logger, web, { code: "EEMPTY" });
    assert.deepEqual(logger.lines, [
      ["app did not answer", { route: "lab", user: "ann", code: "ECONNREFUSED" }],
      ["app did not answer", { route: "web", user: "ann", code: "EEMPTY" }],
    ]);
    clock.now = start + 10_000;
    logAppFailure(logger, lab, { code: "ECONNREFUSED" });
    assert.deepEqual(logger.lines[2], ["app did not answer", { route: "lab", user: "ann", code: "ECONNREFUSED", moreSinceLastLine: 4 }]);
  } finally {
    clock.now = start;
  }
});
