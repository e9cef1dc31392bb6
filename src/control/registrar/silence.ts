/**
 * The one watcher of publications that no control connection holds (routes
 * and streams taken over at a restart, waiting for their client): every few
 * seconds it probes their sockets, and one that stayed silent past the grace
 * is dropped (its client is gone).
 *
 * @module
 */
import { socketAnswers } from "../../lib/socket_check.ts";
import { everySecond } from "../../lib/sweeper.ts";
import type { Publication } from "./publication.ts";

/** How often waiting publications are probed, in ms. */
export const PROBE_EVERY_MS = 5_000;
/** How long a waiting publication's socket may stay silent before it is dropped, in ms. */
export const SILENT_GRACE_MS = 30_000;

/** Probes the sockets of `waiting()` and calls `drop` for those silent too long (by `now`). Returns a function that stops. */
export function watchSilence(waiting: () => Iterable<Publication>, drop: (publication: Publication) => void, now: () => number = Date.now): () => void {
  let lastProbe = Date.now();
  let probing = false;
  return everySecond((tick) => {
    if (probing || tick - lastProbe < PROBE_EVERY_MS) return;
    lastProbe = tick;
    probing = true;
    void probeAll([...waiting()], drop, now).finally(() => { probing = false; });
  });
}

async function probeAll(publications: Publication[], drop: (publication: Publication) => void, now: () => number): Promise<void> {
  for (const p of publications) {
    const alive = await socketAnswers(p.socketPath, 2000);
    if (p.ended || p.holder !== null) continue;
    if (alive) p.silentSince = 0;
    else if (p.silentSince === 0) p.silentSince = now();
    else if (now() - p.silentSince > SILENT_GRACE_MS) drop(p);
  }
}
