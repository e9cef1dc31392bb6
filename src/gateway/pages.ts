/**
 * The gateway's own responses: small HTML pages for errors and the auth
 * redirect, written either through a ServerResponse or raw to a socket (for
 * refused websocket upgrades).
 *
 * @module
 */
import { STATUS_CODES, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

/** What a page says, by status. */
const DETAILS: Record<number, string> = {
  400: "The request was malformed.",
  403: "This address needs its authorization link. Open the link conductor printed when the app went live (the auth link of the <code>live</code> event, or <code>conductor show NAME</code>); it sets a cookie for this address.",
  404: "No app is published at this address. It may have stopped; run conductor again on the compute node to publish it.",
  405: "This method is not supported here.",
  408: "The request took too long to arrive.",
  413: "The request body is too large.",
  431: "The request headers are too large or too many.",
  501: "The request uses a transfer coding the gateway does not support.",
  502: "The app did not answer. It may have stopped, or its SSH connection may be reconnecting; try again in a moment.",
  504: "The app did not answer in time.",
  505: "This HTTP version is not supported.",
};

const cache = new Map<number, Buffer>();

/** The HTML body of the page for `status`. */
export function pageBody(status: number): Buffer {
  let body = cache.get(status);
  if (body === undefined) {
    const title = `${status} ${STATUS_CODES[status] ?? "Error"}`;
    const detail = DETAILS[status] ?? "";
    body = Buffer.from(`<!doctype html>\n<html><head><meta charset="utf-8"><title>${title}</title></head>` +
      `<body><h1>${title}</h1><p>${detail}</p><hr><p>conductor</p></body></html>\n`);
    cache.set(status, body);
  }
  return body;
}

/** Sends the page for `status`; `close` ends the connection after it. */
export function sendPage(res: ServerResponse, status: number, close = false): void {
  const body = pageBody(status);
  const headers: Record<string, string | number> = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Length": body.length,
    "Cache-Control": "no-store",
  };
  if (close) headers.Connection = "close";
  res.writeHead(status, headers);
  res.end(res.req.method === "HEAD" ? undefined : body);
}

/** Writes the page for `status` raw to a socket and ends it (for upgrade requests). */
export function writeRawPage(socket: Duplex, status: number): void {
  const body = pageBody(status);
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\n` +
    `Content-Type: text/html; charset=utf-8\r\nContent-Length: ${body.length}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n` +
    body.toString("latin1"), "latin1");
}
