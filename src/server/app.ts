/**
 * The request handler: request ids, routing (404 / 405), auth (401), state (503), error wrapping (every
 * failure becomes an OpenAI-shaped JSON error; unexpected ones are logged and answered 500), access logs and
 * HTTP metrics.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { makeAuthCheck } from "./auth.ts";
import { ClientGoneError } from "./body.ts";
import { handleChat } from "./chat.ts";
import { handleCompletions } from "./completions.ts";
import type { Handler, RequestScope, ServerContext } from "./context.ts";
import { ApiError } from "./errors.ts";
import { sendError } from "./respond.ts";
import { handleHealth, handleMetrics, handleModels } from "./status.ts";
import { handleDetokenize, handleTokenize } from "./tokenize.ts";

interface Route {
  methods: Record<string, Handler>;
  /** No API key needed. */
  open?: boolean;
}

const ROUTES: Record<string, Route> = {
  "/v1/completions": { methods: { POST: handleCompletions } },
  "/v1/chat/completions": { methods: { POST: handleChat } },
  "/v1/models": { methods: { GET: handleModels } },
  "/tokenize": { methods: { POST: handleTokenize } },
  "/detokenize": { methods: { POST: handleDetokenize } },
  "/health": { methods: { GET: handleHealth }, open: true },
  "/metrics": { methods: { GET: handleMetrics }, open: true },
};

/** A client-supplied x-request-id is echoed when it is short and plain; otherwise one is made. */
const REQUEST_ID = /^[\w.:@=+/-]{1,128}$/;

function requestId(req: IncomingMessage): string {
  const given = req.headers["x-request-id"];
  return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Responses the server's clientError handler answered by writing straight to the socket (a malformed body, a
 * request timeout), with their status in statusCode: counted under it, not as a client that went away (499).
 */
export const answeredOnSocket = new WeakSet<ServerResponse>();

export function createHandler(ctx: ServerContext): (req: IncomingMessage, res: ServerResponse) => void {
  const checkAuth = makeAuthCheck(ctx.config.apiKey);

  async function dispatch(scope: RequestScope, route: Route | undefined): Promise<void> {
    const { req, res } = scope;
    if (route === undefined) {
      throw new ApiError(
        404,
        `no route ${req.method} ${scope.route === "unknown" ? req.url?.split("?")[0] : scope.route}`,
        {
          code: "not_found",
        },
      );
    }
    const method = req.method === "HEAD" && route.methods.GET ? "GET" : (req.method ?? "");
    const handler = Object.hasOwn(route.methods, method) ? route.methods[method] : undefined;
    if (handler === undefined) {
      const allow = Object.keys(route.methods).join(", ");
      throw new ApiError(405, `method ${req.method} is not allowed on ${scope.route} (allowed: ${allow})`, {
        code: "method_not_allowed",
        headers: { allow },
      });
    }
    if (!route.open) checkAuth(req);
    if (ctx.state === "draining" || ctx.state === "closed") {
      // Keep-alive connections still bring requests while draining: tell them to go elsewhere.
      res.setHeader("connection", "close");
    }
    await handler(scope);
  }

  return (req, res) => {
    const arrival = performance.now();
    const id = requestId(req);
    res.setHeader("x-request-id", id);
    const path = (req.url ?? "/").split("?")[0];
    const route = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
    const label = route ? path : "unknown";
    const log = ctx.log.child({ reqId: id });
    const scope: RequestScope = { ctx, req, res, log, requestId: id, arrival, route: label };
    ctx.metrics.inflight.inc();
    res.once("close", () => {
      ctx.metrics.inflight.dec();
      const status = res.headersSent || answeredOnSocket.has(res) ? res.statusCode : 499;
      const seconds = (performance.now() - arrival) / 1000;
      ctx.metrics.httpRequests.inc({ route: label, status: String(status) });
      ctx.metrics.httpDuration.observe({ route: label }, seconds);
      if (label === "/health" || label === "/metrics") {
        log.debug({ method: req.method, path, status, ms: Math.round(seconds * 1000) }, "request");
      } else {
        log.info(
          { method: req.method, path, status, ms: Math.round(seconds * 1000), completed: res.writableFinished },
          "request",
        );
      }
    });
    const fail = (err: unknown) => {
      if (err instanceof ClientGoneError) {
        log.info("client went away while sending the body");
        return;
      }
      try {
        if (err instanceof ApiError) {
          if (err.status >= 500 && err.status !== 503) log.warn({ status: err.status, code: err.code }, err.message);
          else log.debug({ status: err.status, code: err.code, param: err.param }, err.message);
          sendError(scope, err);
          return;
        }
        log.error({ err }, "unhandled error in request handler");
        sendError(scope, new ApiError(500, `internal server error (request id ${id})`, { code: "internal_error" }));
      } catch (e) {
        log.error({ err: e }, "could not send the error response");
        res.destroy();
      }
    };
    try {
      dispatch(scope, route).catch(fail);
    } catch (err) {
      fail(err);
    }
  };
}
