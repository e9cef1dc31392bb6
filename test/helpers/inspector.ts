/**
 * A process's V8 inspector, for measuring what it really holds: a process
 * started with `--inspect=127.0.0.1:0` prints where it listens on stderr, and
 * this client talks to it over the DevTools protocol on a websocket.
 *
 * @module
 */
import type { TestProcess } from "./process.ts";
import { openWebSocket, type WsClient } from "./websocket.ts";

/** Memory of a process right after a full garbage collection, in bytes. */
export interface LiveMemory {
  /** JavaScript objects still reachable. */
  heapUsed: number;
  /** Memory outside the heap held by reachable objects (Buffers among them). */
  external: number;
  rss: number;
}

/** A connection to a process's inspector. */
export interface Inspector {
  /** Sends a DevTools command and resolves with its result (one command at a time). */
  send(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Collects all garbage, then reads the process's memory usage. */
  liveMemory(): Promise<LiveMemory>;
  close(): void;
}

/** Connects to the inspector of `proc`, which must have been started with `--inspect=127.0.0.1:0`. */
export async function connectInspector(proc: TestProcess): Promise<Inspector> {
  const line = await proc.waitForLine((l) => l.startsWith("Debugger listening on ws://"), 60_000, "stderr");
  const url = new URL(line.slice("Debugger listening on ".length).trim());
  const ws: WsClient = await openWebSocket({ port: Number(url.port), host: url.host, path: url.pathname });
  let nextId = 1;
  const send = async (method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> => {
    const id = nextId++;
    ws.send(JSON.stringify({ id, method, params }));
    for (;;) {
      const message = JSON.parse((await ws.receive()).toString()) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
      if (message.id !== id) continue;
      if (message.error !== undefined) throw new Error(`${method}: ${message.error.message}`);
      return message.result ?? {};
    }
  };
  return {
    send,
    async liveMemory() {
      await send("HeapProfiler.collectGarbage");
      const { result } = await send("Runtime.evaluate", { expression: "JSON.stringify(process.memoryUsage())", returnByValue: true }) as { result: { value: string } };
      const usage = JSON.parse(result.value) as NodeJS.MemoryUsage;
      return { heapUsed: usage.heapUsed, external: usage.external, rss: usage.rss };
    },
    close: () => ws.close(),
  };
}
