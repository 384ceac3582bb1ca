/** Loom's OpenAI-compatible HTTP server. */

export { DEFAULT_MAX_BODY_BYTES } from "./body.ts";
export type { ServerState } from "./context.ts";
export { ApiError } from "./errors.ts";
export {
  DEFAULT_MAX_QUEUED_REQUESTS,
  type RunningServer,
  type ServerOptions,
  startServer,
} from "./server.ts";
