/**
 * The gateway's own error pages: small HTML documents, built once per status.
 *
 * @module
 */
import { STATUS_CODES } from "node:http";
import { clock } from "../lib/sweeper.ts";

/** What a page says, by status. */
const DETAILS: Record<number, string> = {
  400: "The request was malformed.",
  403: "This address needs its authorization link. Open the link conductor printed when the app went live (the auth link of the <code>live</code> event, or <code>conductor show NAME</code>); it sets a cookie for this address.",
  404: "No app is published at this address. It may have stopped; run conductor again on the compute node to publish it.",
  405: "This method is not supported here.",
  408: "The request took too long to arrive.",
  413: "The request body is too large.",
  417: "Only <code>Expect: 100-continue</code> is supported.",
  431: "The request headers are too large or too many.",
  501: "The request uses a transfer coding the gateway does not support.",
  503: "The app at this address is not connected right now: the gateway has just started, or the app's connection ended a moment ago without a goodbye (conductor reconnects on its own, or the app is restarting). Try again in a few seconds.",
  502: "The app did not answer. It may have stopped, or its SSH connection may be reconnecting; try again in a moment.",
  504: "The app did not answer in time.",
  505: "This HTTP version is not supported.",
};

const bodies = new Map<number, Buffer>();

/** The reason phrase of `status`. */
export function reasonOf(status: number): string {
  return STATUS_CODES[status] ?? "Error";
}

/** The HTML body of the page for `status`. */
export function pageBody(status: number): Buffer {
  let body = bodies.get(status);
  if (body === undefined) {
    body = html(status, DETAILS[status] ?? "");
    bodies.set(status, body);
  }
  return body;
}

function html(status: number, detail: string): Buffer {
  const title = `${status} ${reasonOf(status)}`;
  return Buffer.from(`<!doctype html>\n<html><head><meta charset="utf-8"><title>${title}</title></head>` +
    `<body><h1>${title}</h1><p>${detail}</p><hr><p>conductor</p></body></html>\n`);
}

let busyBody: Buffer | null = null;
let appBusyBody: Buffer | null = null;

/** The page for a request whose app has all the connections the gateway allows it (--max-app-connections). */
export function appBusyPage(): Buffer {
  appBusyBody ??= html(503, "The app at this address is busy: it has all the connections this gateway allows one app, and more requests are waiting. Try again in a few seconds.");
  return appBusyBody;
}

/** The whole answer to a connection beyond the gateway's limits: 503 with Retry-After, then the connection closes. */
export function busyResponse(): Buffer {
  busyBody ??= html(503, "The gateway is serving as many connections as it may. Try again in a few seconds.");
  return Buffer.concat([Buffer.from(pageHead(503, busyBody.length, "Connection: close\r\n"), "latin1"), busyBody]);
}

/** The response head of the page for `status`; `connection` is a Connection field line or "". */
export function pageHead(status: number, length: number, connection: string): string {
  // A 503 is a route on its way back (RFC 9110 section 10.2.3): say when to try again. The one 405 is
  // for the gateway's own pages, which must say what they allow (RFC 9110 section 15.5.6).
  return `HTTP/1.1 ${status} ${reasonOf(status)}\r\n${dateField()}Content-Type: text/html; charset=utf-8\r\nContent-Length: ${length}\r\n` +
    `Cache-Control: no-store\r\n${status === 503 ? "Retry-After: 5\r\n" : status === 405 ? "Allow: GET, HEAD\r\n" : ""}${connection}\r\n`;
}

let dateSecond = -1;
let dateLine = "";

/** A `Date` field line for the gateway's own responses, built at most once a second. */
export function dateField(): string {
  const second = Math.floor(clock.now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateLine = `Date: ${new Date(second * 1000).toUTCString()}\r\n`;
  }
  return dateLine;
}
