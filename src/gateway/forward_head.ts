/**
 * The request head the gateway sends to an app: the browser's head minus
 * hop-by-hop fields and the `authorization` cookie, plus X-Forwarded-*.
 *
 * The head is cut from the received one: runs of field lines that pass
 * unchanged are copied as one slice, and only the lines that change are
 * written anew.
 *
 * @module
 */
import { cookiesWithoutAuth } from "./auth.ts";
import { FieldKind, LINE_STRIDE, lowerName, type RequestHead } from "./request_head.ts";

/** How the gateway fills X-Forwarded-For, -Proto and -Host: what it knows of one browser connection. */
export interface ForwardedFacts {
  /** The browser's address, or null when unknown (listening on a UNIX socket). */
  readonly clientAddress: string | null;
  /** "https" when the browser connection is TLS. */
  readonly proto: "http" | "https";
  /**
   * Keep X-Forwarded-* from the request (a reverse proxy in front set them)
   * instead of replacing them.
   */
  readonly trustForwarded: boolean;
  /** Without `trustForwarded`, the X-Forwarded-For and -Proto lines, the same for every request of the connection. */
  readonly fixedLines: string;
}

/** The facts of a browser connection, made once when it is accepted. */
export function forwardedFacts(clientAddress: string | null, proto: "http" | "https", trustForwarded: boolean): ForwardedFacts {
  const fixedLines = (clientAddress === null ? "" : "X-Forwarded-For: " + clientAddress + "\r\n") + "X-Forwarded-Proto: " + proto + "\r\n";
  return { clientAddress, proto, trustForwarded, fixedLines };
}

/**
 * Builds the head sent to the app for `request` (request line and header
 * lines, ending with the empty line, latin1). With `upgrade`, the Upgrade
 * and Connection fields of a websocket handshake are kept. Framing fields
 * (Content-Length, Transfer-Encoding: chunked) pass unchanged: the body is
 * forwarded as received.
 */
export function buildForwardHead(request: RequestHead, facts: ForwardedFacts, upgrade: boolean): string {
  const { text, lines } = request;
  const trust = facts.trustForwarded;
  const named = request.hopByHop;
  let head: string;
  // The start of the run of received lines that pass unchanged, or -1.
  let run: number;
  if (request.plainRequestLine) {
    head = "";
    run = 0;
  } else {
    head = request.method + " " + request.target + " HTTP/1.1\r\n";
    run = -1;
  }
  let cookies: string | null = null;
  let xff: string | null = null, xfProto: string | null = null, xfHost: string | null = null;
  for (let i = 0; i < lines.length; i += LINE_STRIDE) {
    const start = lines[i], colon = lines[i + 1], from = lines[i + 2], to = lines[i + 3], kind = lines[i + 4];
    let keep = false;
    switch (kind) {
      case FieldKind.cookie:
        cookies = cookiesWithoutAuth(text, from, to, cookies ?? "");
        break;
      case FieldKind.xForwardedFor:
        if (trust) xff = xff === null ? text.slice(from, to) : xff + ", " + text.slice(from, to);
        break;
      case FieldKind.xForwardedProto:
        if (trust && xfProto === null) xfProto = text.slice(from, to);
        break;
      case FieldKind.xForwardedHost:
        if (trust && xfHost === null) xfHost = text.slice(from, to);
        break;
      case FieldKind.claim:
        // Other spellings of the same claims: an app may believe them, so only a trusted proxy's pass.
        keep = trust;
        break;
      case FieldKind.host:
      case FieldKind.other:
        keep = true;
        break;
    }
    if (keep && named !== null && named.has(lowerName(request, i))) keep = false;
    const end = i + LINE_STRIDE < lines.length ? lines[i + LINE_STRIDE] : text.length + 2;
    // A line passes as received when it reads "name: value" already; the Host of an absolute-form target is replaced.
    const asReceived = keep && from === colon + 2 && text.charCodeAt(colon + 1) === 32 && to === end - 2 &&
      (kind !== FieldKind.host || request.authority === null);
    if (asReceived) {
      if (run === -1) run = start;
      continue;
    }
    if (run !== -1) {
      head += text.slice(run, start);
      run = -1;
    }
    if (keep) head += text.slice(start, colon) + ": " + (kind === FieldKind.host && request.authority !== null ? request.authority : text.slice(from, to)) + "\r\n";
  }
  if (run !== -1) head += text.slice(run) + "\r\n";
  if (cookies !== null && cookies !== "") head += "Cookie: " + cookies + "\r\n";
  if (!trust) {
    head += facts.fixedLines;
  } else {
    if (facts.clientAddress !== null) xff = xff === null ? facts.clientAddress : xff + ", " + facts.clientAddress;
    if (xff !== null) head += "X-Forwarded-For: " + xff + "\r\n";
    head += "X-Forwarded-Proto: " + (xfProto ?? facts.proto) + "\r\n";
  }
  head += "X-Forwarded-Host: " + (xfHost ?? request.host) + "\r\n";
  if (upgrade) head += "Connection: Upgrade\r\nUpgrade: " + request.upgrade + "\r\n";
  return head + "\r\n";
}
