/**
 * Domain patterns (`-d {key}-{user}.example.org`) and Host header normalization.
 *
 * A route is published under one host name per pattern. Rather than parsing a
 * Host into key and user (ambiguous when either contains '-'), the route table
 * indexes every rendered host name, so a lookup is one exact map access and a
 * Host that several splits could match resolves to the route that exists.
 *
 * @module
 */
import { ConductorError } from "../lib/errors.ts";

/** A parsed `-d` pattern. */
export interface DomainPattern {
  /** The pattern as given, lowercased. */
  source: string;
  /** The host name of route `key` of `user` under this pattern. */
  render(key: string, user: string): string;
  /** Every way `host` can be read as a key and a user under this pattern (several when they contain the separator). */
  split(host: string): Array<{ key: string; user: string }>;
}

const PATTERN_CHARS = /^[a-z0-9.:\[\]{}_-]+$/;

/**
 * Parses a domain pattern containing `{key}` and `{user}` once each, e.g.
 * `{key}-{user}.example.org` or `{key}-{user}.localhost:8888`.
 * Throws `CONDUCTOR_ERR_USAGE` naming the problem otherwise.
 */
export function parseDomainPattern(pattern: string): DomainPattern {
  const source = pattern.toLowerCase();
  const count = (needle: string): number => source.split(needle).length - 1;
  if (count("{key}") !== 1 || count("{user}") !== 1) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE",
      `Cannot use domain pattern '${pattern}': it must contain {key} and {user} once each, e.g. '{key}-{user}.example.org'`);
  }
  if (!PATTERN_CHARS.test(source) || /[{}]/.test(source.replace("{key}", "").replace("{user}", ""))) {
    throw new ConductorError("CONDUCTOR_ERR_USAGE",
      `Cannot use domain pattern '${pattern}': use only letters, digits, '.', '-', '_' and an optional ':port' besides {key} and {user}`);
  }
  const keyFirst = source.indexOf("{key}") < source.indexOf("{user}");
  const [a, rest] = splitOnce(source, keyFirst ? "{key}" : "{user}");
  const [b, c] = splitOnce(rest, keyFirst ? "{user}" : "{key}");
  return {
    source,
    render: keyFirst
      ? (key, user) => a + key + b + user + c
      : (key, user) => a + user + b + key + c,
    split(host) {
      const parses: Array<{ key: string; user: string }> = [];
      if (!host.startsWith(a) || !host.endsWith(c) || host.length < a.length + b.length + c.length + 2) return parses;
      const middle = host.slice(a.length, host.length - c.length);
      for (let i = middle.indexOf(b, 1); i !== -1 && i + b.length < middle.length; i = middle.indexOf(b, i + 1)) {
        const first = middle.slice(0, i);
        const second = middle.slice(i + b.length);
        parses.push(keyFirst ? { key: first, user: second } : { key: second, user: first });
      }
      return parses;
    },
  };
}

function splitOnce(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return [s.slice(0, i), s.slice(i + sep.length)];
}

const HOST_RE = /^(?:[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$/;

/**
 * Lowercases a Host header value and checks that it is a host name or IP
 * literal with an optional port (no path, userinfo or spaces); a trailing
 * dot of the name is dropped. Returns null for an invalid value.
 */
export function normalizeHost(value: string): string | null {
  let host = value.toLowerCase();
  if (!HOST_RE.test(host)) {
    // "name.:8888" or "name." (fully qualified forms) are the same host.
    const m = /^(.*[^.])\.(:[0-9]{1,5})?$/.exec(host);
    if (!m || !HOST_RE.test(m[1] + (m[2] ?? ""))) return null;
    host = m[1] + (m[2] ?? "");
  }
  return host;
}

/** The host without its `:port`, or null when it has none. */
export function withoutPort(host: string): string | null {
  const colon = host.lastIndexOf(":");
  if (colon === -1 || host.endsWith("]")) return null;
  return host.slice(0, colon);
}
