/**
 * Registers many routes on a gateway through its control socket, without SSH,
 * as the benchmark's route-scale harness: each route gets its own listening
 * socket answering a tiny fixed response (the first one serves the full test
 * app, websockets included). Holds every registration until stdin closes.
 *
 * Usage: registrar.js CONTROL_SOCKET COUNT [FIRST_INDEX]
 * Prints `{"registered": N, "seconds": S}` after each batch, `{"done": true}` at the end, or
 * `{"refused": REASON, "registered": N, "done": true}` at the first registration the gateway refuses.
 *
 * @module
 */
import { chmodSync } from "node:fs";
import { createServer, connect, type Server } from "node:net";
import { join } from "node:path";
import { hashToken } from "../../src/lib/token.ts";
import { createTestApp } from "../fixtures/app.ts";

const [controlPath, countText, firstText = "0"] = process.argv.slice(2);
const count = Number(countText);
const first = Number(firstText);
const auth = hashToken("benchmark-token-0");
const OK = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const servers: Server[] = [];

function tinyServer(): Server {
  return createServer((socket) => {
    socket.on("data", () => socket.write(OK));
    socket.on("error", () => socket.destroy());
  });
}

function registerOne(index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const control = connect(controlPath);
    let buffered = "";
    let stage = 0;
    control.setEncoding("utf8");
    control.on("error", reject);
    control.on("data", (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const message = JSON.parse(line);
        if (stage === 0) {
          stage = 1;
          const path = join(message.directory, "socket");
          const server = index === 0 ? createTestApp() : tinyServer();
          servers.push(server);
          server.listen(path, () => {
            chmodSync(path, 0o660);
            control.write(JSON.stringify({ auth, key: `r${index}` }) + "\n");
          });
        } else if (stage === 1) {
          stage = 2;
          if (message.status !== "ok") reject(Object.assign(new Error(message.reason), { refused: true }));
          else resolve();
        }
      }
    });
  });
}

const started = process.hrtime.bigint();
const parallel = 32;
let next = first;
let registered = 0;
let refused: string | null = null;
async function worker(): Promise<void> {
  while (next < first + count) {
    const index = next++;
    try {
      await registerOne(index);
    } catch (err) {
      if (!(err as { refused?: boolean }).refused) throw err;
      // Stop taking new indexes, and let the registrations in flight finish before reporting.
      refused ??= (err as Error).message;
      next = first + count;
      return;
    }
    registered++;
    if (registered % 1000 === 0) {
      process.stdout.write(JSON.stringify({ registered, seconds: Number(process.hrtime.bigint() - started) / 1e9 }) + "\n");
    }
  }
}
await Promise.all(Array.from({ length: parallel }, worker));
process.stdout.write(JSON.stringify(refused === null
  ? { registered, seconds: Number(process.hrtime.bigint() - started) / 1e9, done: true }
  : { refused, registered, done: true }) + "\n");
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
