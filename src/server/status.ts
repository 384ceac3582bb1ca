/** GET /health, GET /v1/models, GET /metrics, and the readiness check the other routes share. */
import type { Handler, Loaded, ServerContext } from "./context.ts";
import { ApiError } from "./errors.ts";
import { sendJson } from "./respond.ts";

/** How long a scrape waits for engine stats before serving the last ones. */
const STATS_TIMEOUT_MS = 2000;

/** The engine, or 503 while the server is starting or draining. */
export function requireLoaded(ctx: ServerContext): Loaded {
  if (ctx.state === "draining" || ctx.state === "closed") {
    throw new ApiError(503, "the server is shutting down", {
      code: "shutting_down",
      headers: { "retry-after": String(ctx.config.retryAfterSeconds) },
      closeConnection: true,
    });
  }
  if (ctx.loaded === null || ctx.state !== "ready") {
    throw new ApiError(503, "the server is starting: the model is still loading", {
      code: "starting",
      headers: { "retry-after": String(ctx.config.retryAfterSeconds) },
    });
  }
  return ctx.loaded;
}

/** 200 `{"status":"ok"}` when ready; 503 (OpenAI error shape) while starting or draining. Never touches the engine. */
export const handleHealth: Handler = async ({ ctx, res }) => {
  requireLoaded(ctx);
  sendJson(res, 200, { status: "ok" }, { "cache-control": "no-store" });
};

export const handleModels: Handler = async ({ ctx, res }) => {
  const { engine, limits } = requireLoaded(ctx);
  sendJson(res, 200, {
    object: "list",
    data: [
      {
        id: limits.modelName,
        object: "model",
        created: ctx.startedAt,
        owned_by: "loom",
        root: limits.modelName,
        parent: null,
        max_model_len: engine.info.maxModelLen,
      },
    ],
  });
};

export const handleMetrics: Handler = async ({ ctx, res, log }) => {
  const engine = ctx.loaded?.engine;
  if (engine && ctx.state !== "closed") {
    let timer: NodeJS.Timeout | undefined;
    try {
      const stats = await Promise.race([
        engine.stats(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("engine stats timed out")), STATS_TIMEOUT_MS);
        }),
      ]);
      ctx.metrics.update(stats);
    } catch (err) {
      log.warn({ err }, "engine stats unavailable; serving the last values");
    } finally {
      clearTimeout(timer);
    }
  }
  const text = await ctx.metrics.render();
  if (res.destroyed) return;
  res.writeHead(200, { "content-type": ctx.metrics.contentType, "content-length": String(Buffer.byteLength(text)) });
  res.end(text);
};
