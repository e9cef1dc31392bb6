/**
 * When a registration may take the place of a publication of the same name
 * (a route's key, a stream's name) of the same user. A client that
 * reconnects presents the same token hash as before, which proves it is the
 * same run: it takes its place back at once, so that it is never locked out
 * of its own name. Another run only takes a publication that no control
 * connection holds (waiting after a restart) and whose socket is silent:
 * its client is gone.
 *
 * @module
 */
import { socketAnswers } from "../../lib/socket_check.ts";
import type { Publication } from "./publication.ts";

/** True when a registration with token hash `auth` may take `existing`'s place. */
export async function mayTake(existing: Publication, auth: string): Promise<boolean> {
  if (existing.auth === auth) return true;
  return existing.holder === null && !await socketAnswers(existing.socketPath, 2000);
}
