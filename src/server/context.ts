/** What every route handler gets: the engine (once loaded), the configuration, metrics and logger. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { Engine } from "../engine/engine.ts";
import type { TokenStrings } from "./logprobs.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { ModelLimits } from "./requests.ts";

export type ServerState = "starting" | "ready" | "draining" | "closed";

export interface ServerConfig {
  /** Bearer token required on every route but /health and /metrics; undefined = no auth. */
  apiKey?: string;
  maxBodyBytes: number;
  /** 429 once engine.numWaiting() reaches this. */
  maxQueuedRequests: number;
  /** Retry-After (seconds) sent with 429 and 503. */
  retryAfterSeconds: number;
}

/** The engine and what is derived from it, present once the engine has loaded. */
export interface Loaded {
  engine: Engine;
  limits: ModelLimits;
  strings: TokenStrings;
}

/** Something in flight that drain() may have to abort. */
export interface Abortable {
  abort(): void;
}

export interface ServerContext {
  state: ServerState;
  loaded: Loaded | null;
  readonly config: ServerConfig;
  readonly metrics: ServerMetrics;
  readonly log: Logger;
  /** Unix seconds when the server started (the model's `created`). */
  readonly startedAt: number;
  /** Generation runs in flight. */
  readonly runs: Set<Abortable>;
}

/** One request being handled. */
export interface RequestScope {
  readonly ctx: ServerContext;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly log: Logger;
  readonly requestId: string;
  /** performance.now() when the request arrived. */
  readonly arrival: number;
  /** The route label (for metrics). */
  readonly route: string;
}

export type Handler = (scope: RequestScope) => Promise<void>;
