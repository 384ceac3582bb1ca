/** Small response helpers: JSON answers, OpenAI-shaped errors, and noticing a client that went away. */
import type { ServerResponse } from "node:http";
import type { RequestScope } from "./context.ts";
import type { ApiError } from "./errors.ts";

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) {
    if (!res.writableEnded) res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
  });
  res.end(text);
}

export function sendError(scope: RequestScope, err: ApiError): void {
  const { req, res } = scope;
  const headers: Record<string, string> = { ...err.headers };
  // A body we did not read (or stopped reading) must not be parsed as the next request: close instead.
  if (err.closeConnection || !req.complete) headers.connection = "close";
  sendJson(res, err.status, err, headers);
}

/** Whether the client went away before the response ended. */
export function clientGone(scope: RequestScope): boolean {
  return scope.res.destroyed && !scope.res.writableEnded;
}

/**
 * Calls `onGone` once if the client disconnects before the response has ended (streaming or not).
 * Returns a function that stops watching.
 */
export function watchClient(scope: RequestScope, onGone: () => void): () => void {
  const { req, res } = scope;
  let fired = false;
  const check = () => {
    if (fired || res.writableEnded) return;
    // req "close" also fires once the body has been read: only a destroyed socket means the client left.
    if (res.destroyed || req.socket?.destroyed !== false) {
      fired = true;
      scope.ctx.metrics.clientDisconnects.inc({ route: scope.route });
      scope.log.info("client disconnected; aborting");
      onGone();
    }
  };
  res.on("close", check);
  req.on("close", check);
  if (res.destroyed || req.socket?.destroyed) check();
  return () => {
    res.off("close", check);
    req.off("close", check);
  };
}
