/**
 * Server-sent events writer with backpressure that cannot hang: when a write is buffered it waits for
 * `drain` OR `close` (a dead socket never drains), and reports whether the client is still there.
 */
import type { ServerResponse } from "node:http";

/** Resolves when `res` can take more data or is gone. */
export function drainOrClose(res: ServerResponse): Promise<void> {
  if (res.destroyed || res.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      res.off("error", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
    res.on("error", done);
  });
}

export class SseWriter {
  #started = false;

  constructor(private readonly res: ServerResponse) {}

  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  get started(): boolean {
    return this.#started;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    this.res.flushHeaders();
  }

  /** Sends one `data:` event; false once the client is gone. */
  async send(data: unknown): Promise<boolean> {
    return this.#write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
  }

  async #write(chunk: string): Promise<boolean> {
    if (!this.open) return false;
    if (!this.res.write(chunk)) await drainOrClose(this.res);
    return this.open;
  }

  /** Writes `data: [DONE]` and ends the response. */
  async done(): Promise<void> {
    if (await this.#write("data: [DONE]\n\n")) this.res.end();
  }
}
