/**
 * Files of the kernel under /proc, whose size reads as 0: `fs.promises.readFile`
 * of Node.js 18 stops after the first read, which procfs ends at a page, so a
 * long table (/proc/net/unix on a busy host) came back cut short.
 *
 * @module
 */
import { promises as fs } from "node:fs";

/** Size of each read. */
const CHUNK = 65_536;

/** The whole text of a file under /proc, read until its end; rejects as `fs.readFile` does. */
export async function readProcFile(path: string): Promise<string> {
  const file = await fs.open(path, "r");
  try {
    const chunks: Buffer[] = [];
    for (;;) {
      const { bytesRead, buffer } = await file.read(Buffer.alloc(CHUNK), 0, CHUNK, null);
      if (bytesRead === 0) return Buffer.concat(chunks).toString("utf8");
      chunks.push(buffer.subarray(0, bytesRead));
    }
  } finally {
    await file.close();
  }
}
