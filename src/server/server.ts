/**
 * Server lifecycle: listen (the engine may still be loading: 503 until it is ready), drain (stop accepting,
 * let requests finish within a timeout, then abort the rest cleanly) and close.
 */
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import pino, { type Logger } from "pino";
import type { Engine } from "../engine/engine.ts";
import { answeredOnSocket, createHandler } from "./app.ts";
import { DEFAULT_MAX_BODY_BYTES } from "./body.ts";
import type { Loaded, ServerContext, ServerState } from "./context.ts";
import { ApiError } from "./errors.ts";
import { TokenStrings } from "./logprobs.ts";
import { ServerMetrics } from "./metrics.ts";
import type { ModelLimits } from "./requests.ts";

export const DEFAULT_MAX_QUEUED_REQUESTS = 256;
/** After aborting what was left at the end of a drain, how long streams get to write their last chunk. */
const ABORT_GRACE_MS = 5000;

export interface ServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  apiKey?: string;
  /** Default 10 MiB. */
  maxBodyBytes?: number;
  /** Default 256. */
  maxQueuedRequests?: number;
  /** Retry-After seconds for 429 / 503 (default 1). */
  retryAfterSeconds?: number;
  /** Default: a silent logger. */
  logger?: Logger;
  /** Node process metrics in /metrics (default true). */
  defaultMetrics?: boolean;
}

export interface RunningServer {
  /** e.g. http://127.0.0.1:8000 */
  readonly url: string;
  readonly port: number;
  readonly state: ServerState;
  /** Resolves once the engine is loaded and the server answers requests (rejects if the engine failed). */
  readonly ready: Promise<void>;
  /**
   * Stops accepting requests (/health → 503), waits up to `timeoutMs` for in-flight requests, aborts the rest
   * (their streams end with finish_reason "abort") and closes every connection. Does not close the engine.
   */
  drain(timeoutMs: number): Promise<void>;
  /** drain(0). */
  close(): Promise<void>;
}

/** Limits derived from the model for request validation. */
export function modelLimits(engine: Engine): ModelLimits {
  const { tokenizer, info } = engine;
  let longestPiece = 1;
  for (let id = 0; id < tokenizer.vocabSize; id++)
    longestPiece = Math.max(longestPiece, tokenizer.tokenText(id).length);
  return {
    modelName: info.modelName,
    maxModelLen: info.maxModelLen,
    vocabSize: info.vocabSize,
    // A token covers at most `longestPiece` characters; the factor 2 leaves room for normalizers.
    maxPromptChars: info.maxModelLen * Math.max(longestPiece, 8) * 2,
  };
}

function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

export async function startServer(engine: Engine | Promise<Engine>, opts: ServerOptions = {}): Promise<RunningServer> {
  const log = opts.logger ?? pino({ level: "silent" });
  const metrics = new ServerMetrics({ defaultMetrics: opts.defaultMetrics });
  const ctx: ServerContext = {
    state: "starting",
    loaded: null,
    config: {
      apiKey: opts.apiKey,
      maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      maxQueuedRequests: opts.maxQueuedRequests ?? DEFAULT_MAX_QUEUED_REQUESTS,
      retryAfterSeconds: opts.retryAfterSeconds ?? 1,
    },
    metrics,
    log,
    startedAt: Math.floor(Date.now() / 1000),
    runs: new Set(),
  };
  const setState = (s: ServerState) => {
    ctx.state = s;
    metrics.setState(s);
  };
  setState("starting");

  const active = new Set<ServerResponse>();
  let onIdle: (() => void) | null = null;
  const handle = createHandler(ctx);
  const server = createServer(
    { keepAliveTimeout: 5000, headersTimeout: 30_000, requestTimeout: 120_000 },
    (req, res) => {
      active.add(res);
      res.once("close", () => {
        active.delete(res);
        if (active.size === 0) onIdle?.();
      });
      handle(req, res);
    },
  );
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    // As Node's default handler: answer unless part of a response is already on the wire. A request whose
    // headers were parsed has a ServerResponse here that has sent nothing yet (a malformed chunked body, a body
    // that never completes within requestTimeout, garbage pipelined after it): it still gets its error.
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (!socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, reason] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large"]
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "Request Timeout"]
          : [400, "Bad Request"];
    const message =
      status === 408 ? "the request was not received in time" : `malformed HTTP request: ${err.code ?? err.message}`;
    const body = JSON.stringify(new ApiError(status, message, { code: status === 408 ? "request_timeout" : null }));
    if (inFlight) {
      inFlight.statusCode = status;
      answeredOnSocket.add(inFlight);
    }
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  // Node answers an unknown `Expect` header with a bare 417 (no body); give it the OpenAI error shape.
  server.on("checkExpectation", (req, res) => {
    const body = JSON.stringify(
      new ApiError(417, `unsupported Expect header ${JSON.stringify(String(req.headers.expect).slice(0, 60))}`, {
        code: "expectation_failed",
      }),
    );
    res.writeHead(417, {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(body)),
      connection: "close",
    });
    res.end(body);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 8000, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => log.error({ err }, "http server error"));
  const address = server.address() as AddressInfo;
  const url = `http://${urlHost(opts.host ?? "127.0.0.1")}:${address.port}`;

  const ready = Promise.resolve(engine).then((e) => {
    const loaded: Loaded = { engine: e, limits: modelLimits(e), strings: new TokenStrings(e.tokenizer) };
    ctx.loaded = loaded;
    metrics.setModel(loaded.limits.modelName);
    if (ctx.state === "starting") setState("ready");
  });
  ready.catch(() => {}); // the caller decides what a failed load means

  const waitIdle = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (active.size === 0) return resolve(true);
      const timer = setTimeout(() => {
        onIdle = null;
        resolve(active.size === 0);
      }, ms);
      onIdle = () => {
        clearTimeout(timer);
        onIdle = null;
        resolve(true);
      };
    });

  let draining: Promise<void> | null = null;
  const drain = (timeoutMs: number): Promise<void> => {
    draining ??= (async () => {
      setState("draining");
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      log.info({ inFlight: active.size, timeoutMs }, "draining");
      if (!(await waitIdle(Math.max(0, timeoutMs)))) {
        log.warn({ inFlight: active.size, runs: ctx.runs.size }, "shutdown timeout reached; aborting what is left");
        for (const run of [...ctx.runs]) run.abort();
        if (!(await waitIdle(ABORT_GRACE_MS))) log.warn({ inFlight: active.size }, "closing connections still open");
      }
      server.closeAllConnections();
      await closed;
      setState("closed");
      log.info("http server closed");
    })();
    return draining;
  };

  return {
    url,
    port: address.port,
    get state() {
      return ctx.state;
    },
    ready,
    drain,
    close: () => drain(0),
  };
}
