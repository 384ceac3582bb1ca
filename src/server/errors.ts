/**
 * API errors in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) and the mapping from
 * engine errors (ParamError, PromptTooLongError, RequestRejectedError, ChatTemplateError) to them.
 */
import { PromptTooLongError } from "../engine/engine.ts";
import { ParamError } from "../sampler/params.ts";

export interface ApiErrorOptions {
  type?: string;
  param?: string | null;
  code?: string | null;
  /** Extra response headers (Retry-After, Allow, WWW-Authenticate...). */
  headers?: Record<string, string>;
  /** Close the connection after answering (e.g. a body we stopped reading). */
  closeConnection?: boolean;
}

/** An error the client is told about, with its HTTP status. */
export class ApiError extends Error {
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Record<string, string>;
  readonly closeConnection: boolean;

  constructor(
    readonly status: number,
    message: string,
    opts: ApiErrorOptions = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.type = opts.type ?? defaultType(status);
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
    this.headers = opts.headers ?? {};
    this.closeConnection = opts.closeConnection ?? false;
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

function defaultType(status: number): string {
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null): ApiError =>
  new ApiError(400, message, { param, code });

/** camelCase → snake_case (topP → top_p). */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The prompt is longer than the context (from PromptTooLongError or the server's own character bound). */
export function promptTooLong(message: string, param: string): ApiError {
  return new ApiError(400, message, { param, code: "context_length_exceeded" });
}

function isNamed(err: unknown, name: string): err is Error {
  return err instanceof Error && err.name === name;
}

/**
 * Maps an error thrown by `engine.generate` (or the tokenizer) to an ApiError; null when it is not a client
 * error (the caller answers 500). `paramNames` renames the engine's camelCase parameter names to the ones the
 * request used (e.g. maxTokens → max_completion_tokens); the rest become snake_case.
 */
export function fromEngineError(
  err: unknown,
  promptParam: string,
  paramNames: Record<string, string> = {},
): ApiError | null {
  if (err instanceof ApiError) return err;
  if (err instanceof ParamError || (isNamed(err, "ParamError") && typeof (err as ParamError).param === "string")) {
    const camel = (err as ParamError).param;
    const clientName = (c: string) =>
      paramNames[c] ?? (c === "prompt" || c === "messages" ? promptParam : snakeCase(c));
    const name = clientName(camel);
    // The engine's messages name camelCase fields ("minTokens (5) must not exceed maxTokens (3)"); say what the
    // client wrote instead, whole words only.
    let message = err.message;
    for (const c of new Set([camel, ...Object.keys(paramNames)])) {
      const to = clientName(c);
      if (to !== c) message = message.replace(new RegExp(`\\b${c}\\b`, "g"), to);
    }
    return badRequest(message, name, "invalid_value");
  }
  if (err instanceof PromptTooLongError || isNamed(err, "PromptTooLongError")) {
    const e = err as PromptTooLongError;
    if (typeof e.promptTokens === "number" && typeof e.maxModelLen === "number") {
      return promptTooLong(
        `This model's maximum context length is ${e.maxModelLen} tokens, but the prompt has ${e.promptTokens} ` +
          `tokens (at least one token must be left for the completion).`,
        promptParam,
      );
    }
    return promptTooLong(e.message, promptParam);
  }
  if (isNamed(err, "RequestRejectedError")) return badRequest(err.message, promptParam, "request_rejected");
  if (isNamed(err, "ChatTemplateError")) return badRequest(err.message, "messages", "chat_template_error");
  if (err instanceof Error && /engine (is shut down|thread (crashed|exited))/.test(err.message)) {
    return new ApiError(503, `the engine is not available: ${err.message}`, { code: "engine_unavailable" });
  }
  return null;
}
