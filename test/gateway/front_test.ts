/**
 * The front end's answer for a host without a route: 503 (try again) while
 * the gateway is still taking over the previous run's routes, 404 after.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { request } from "../helpers/http.ts";
import { listeningFront } from "./_peers.ts";

test("a host without a route is 503 until the front end is ready, 404 after", async (t) => {
  const { front, port } = await listeningFront(t, {}, false);
  const starting = await request({ port, host: "lab-ann.localhost", path: "/" });
  assert.equal(starting.status, 503);
  assert.match(starting.text, /gateway has just started/);
  assert.equal(starting.headers["retry-after"], "5");
  front.ready();
  assert.equal((await request({ port, host: "lab-ann.localhost", path: "/" })).status, 404);
});
