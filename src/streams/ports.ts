/**
 * Facts about gateway ports, found by trying them: whether a port can be
 * bound (nginx -t does not notice a port another program holds), whether
 * something accepts connections on it, and waiting until it does or stops.
 *
 * @module
 */
import { connect, createServer } from "node:net";

/** Binds `port` on every address and lets go; returns why it cannot be bound, or null when it is free. */
export function bindProblem(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve(
      err.code === "EADDRINUSE" ? `port ${port} is in use by another program` : `port ${port} cannot be bound: ${err.message}`));
    server.listen({ port, host: "0.0.0.0", exclusive: true }, () => server.close(() => resolve(null)));
  });
}

/** True when a connection to 127.0.0.1:`port` is accepted (it is closed at once). */
export function portAnswers(port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Waits until each port answers (`open`) or refuses; returns the ports that did not within `timeoutMs`. */
export async function settlePorts(ports: Iterable<number>, open: boolean, timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  const left = new Set(ports);
  while (left.size > 0) {
    for (const port of [...left]) if (await portAnswers(port) === open) left.delete(port);
    if (left.size === 0 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return [...left];
}
