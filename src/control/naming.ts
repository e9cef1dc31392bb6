/**
 * Who may be published under which host name. A host name like
 * `app-jean-luc.example.org` reads as key `app` of user `jean-luc` or as key
 * `app-jean` of user `luc`; it belongs to the existing user with the longer
 * name, so no user can take a name that reads as another user's.
 *
 * @module
 */
import { ConductorError } from "../lib/errors.ts";
import { findAccount, USER_NAME_RE } from "../lib/users.ts";
import type { DomainPattern } from "../gateway/domains.ts";
import { KEY_RE } from "./protocol.ts";


/** Checks that `user` (lowercased) can be part of a host name. */
export function checkUserName(user: string): void {
  if (!USER_NAME_RE.test(user)) {
    throw new ConductorError("CONDUCTOR_ERR_USER_UNKNOWN",
      `Cannot register route: the user name '${user}' cannot be part of a host name (letters, digits, '_' and '-' only); ask the gateway's admin`);
  }
}

/**
 * Refuses route `key` of `user` when one of its host names also reads as a
 * key of another existing user with a longer name: that host is theirs.
 */
export async function checkHostOwnership(key: string, user: string, patterns: readonly DomainPattern[]): Promise<void> {
  for (const rendered of patterns) {
    const host = rendered.render(key, user);
    for (const pattern of patterns) {
      for (const other of pattern.split(host)) {
        if (other.user === user || other.user.length <= user.length) continue;
        if (!KEY_RE.test(other.key) || !USER_NAME_RE.test(other.user)) continue;
        if (await findAccount(other.user) === null) continue;
        throw new ConductorError("CONDUCTOR_ERR_HOST_TAKEN",
          `Cannot register route: ${host} reads as key '${other.key}' of user ${other.user}, so it is theirs; choose another key with -k`);
      }
    }
  }
}
