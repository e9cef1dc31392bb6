/**
 * The front end's answer for a host without a route: 503 (try again) while
 * the gateway is still taking over the previous run's routes, 404 after.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { parseDomainPattern } from "../../src/gateway/domains.ts";
import { createFrontEnd } from "../../src/gateway/front.ts";
import { RouteTable } from "../../src/gateway/routes.ts";
import { createStats } from "../../src/gateway/stats.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { defer } from "../helpers/cleanup.ts";
import { request } from "../helpers/http.ts";

test("a host without a route is 503 until the front end is ready, 404 after", async (t) => {
  const front = createFrontEnd({
    routes: new RouteTable([parseDomainPattern("{key}-{user}.localhost")]),
    stats: createStats(),
    logger: silentLogger,
    gauges: () => ({ routesTotal: 0, controlConnections: 0, appWaiting: 0, startedAt: Date.now() }),
    version: "test",
    trustForwarded: false,
  });
  await new Promise<void>((resolve) => front.server.listen(0, "127.0.0.1", resolve));
  defer(t, () => new Promise((resolve) => { front.destroyAll(); front.server.close(resolve); }));
  const port = (front.server.address() as AddressInfo).port;
  const starting = await request({ port, host: "lab-ann.localhost", path: "/" });
  assert.equal(starting.status, 503);
  assert.match(starting.text, /gateway has just started/);
  assert.equal(starting.headers["retry-after"], "5");
  front.ready();
  assert.equal((await request({ port, host: "lab-ann.localhost", path: "/" })).status, 404);
});
