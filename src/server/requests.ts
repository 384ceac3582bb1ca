/**
 * Request schemas of /v1/completions and /v1/chat/completions: OpenAI (and vLLM extension) fields → engine
 * prompts, `Partial<SamplingParams>` and response options. Types of server-level fields are checked here;
 * the sampling parameters' types and ranges are checked by the engine (`normalizeSamplingParams`), whose
 * ParamError is mapped back to the OpenAI name (see errors.ts).
 */
import type { ChatMessage, Prompt, SamplingParams } from "../engine/types.ts";
import { TEXT_PART_SEPARATOR } from "../tokenizer/chat-template.ts";
import type { JsonObject } from "./body.ts";
import { ApiError, badRequest, promptTooLong } from "./errors.ts";
import { describe, Fields, isPlainObject } from "./fields.ts";

/** What the request parsers need to know about the served model. */
export interface ModelLimits {
  modelName: string;
  maxModelLen: number;
  vocabSize: number;
  /** Prompts longer than this (in UTF-16 code units) cannot fit the context whatever the tokenization. */
  maxPromptChars: number;
}

/** Most prompts in one /v1/completions batch. */
export const MAX_BATCH_PROMPTS = 128;
/** Most messages in one chat request. */
export const MAX_MESSAGES = 4096;
export const CHAT_ROLES: ReadonlySet<string> = new Set(["system", "developer", "user", "assistant", "tool"]);

export interface GenRequest {
  kind: "completion" | "chat";
  /** One engine request per prompt (a completions batch has several). */
  prompts: Prompt[];
  promptParam: "prompt" | "messages";
  params: Partial<SamplingParams>;
  /** Sequences per prompt (choices are numbered prompt * n + index). */
  n: number;
  stream: boolean;
  includeUsage: boolean;
  /** Alternatives per token to report: null = no logprobs. */
  logprobs: number | null;
  priority?: number;
  cacheSalt?: string;
  /** Engine (camelCase) parameter name → the name the request used, for error messages. */
  paramNames: Record<string, string>;
}

/** OpenAI / vLLM name → SamplingParams key; values go to the engine as sent (it validates them). */
const SAMPLING_FIELDS: readonly [string, keyof SamplingParams][] = [
  ["n", "n"],
  ["temperature", "temperature"],
  ["top_p", "topP"],
  ["top_k", "topK"],
  ["min_p", "minP"],
  ["repetition_penalty", "repetitionPenalty"],
  ["presence_penalty", "presencePenalty"],
  ["frequency_penalty", "frequencyPenalty"],
  ["logit_bias", "logitBias"],
  ["seed", "seed"],
  ["min_tokens", "minTokens"],
  ["stop", "stop"],
  ["stop_token_ids", "stopTokenIds"],
  ["ignore_eos", "ignoreEos"],
  ["include_stop_str_in_output", "includeStopStrInOutput"],
  ["skip_special_tokens", "skipSpecialTokens"],
];

/** 404 unless `model` is absent or the served name. */
export function checkModel(f: Fields, modelName: string): void {
  const model = f.string("model");
  if (model !== undefined && model !== modelName) {
    throw new ApiError(404, `The model \`${model}\` does not exist. This server serves \`${modelName}\`.`, {
      param: "model",
      code: "model_not_found",
    });
  }
}

function commonFields(f: Fields, limits: ModelLimits, kind: GenRequest["kind"]) {
  checkModel(f, limits.modelName);
  const params: Partial<SamplingParams> = {};
  const paramNames: Record<string, string> = {};
  for (const [name, key] of SAMPLING_FIELDS) {
    const v = f.raw(name);
    if (v !== undefined) (params as Record<string, unknown>)[key] = v;
    paramNames[key] = name;
  }
  // Chat prefers max_completion_tokens (max_tokens is deprecated there); completions knows max_tokens only.
  const maxName = kind === "chat" && f.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const maxTokens = f.raw(maxName);
  if (maxTokens !== undefined) params.maxTokens = maxTokens as number;
  paramNames.maxTokens = maxName;

  const stream = f.bool("stream") ?? false;
  const streamOptions = f.object("stream_options");
  const includeUsage = stream && (streamOptions?.bool("include_usage") ?? false);
  streamOptions?.bool("continuous_usage_stats");

  const priority = f.int("priority");
  const cacheSalt = f.string("cache_salt");
  if (cacheSalt !== undefined && (cacheSalt.length === 0 || cacheSalt.length > 1024)) {
    throw badRequest("cache_salt must be a non-empty string of at most 1024 characters", "cache_salt", "invalid_value");
  }

  const bestOf = f.int("best_of");
  const n = typeof params.n === "number" && Number.isSafeInteger(params.n) ? params.n : 1;
  if (bestOf !== undefined && bestOf !== 1 && bestOf !== n) {
    throw badRequest("best_of other than n is not supported", "best_of", "unsupported_parameter");
  }

  const format = f.object("response_format");
  const formatType = format?.string("type");
  if (formatType !== undefined && formatType !== "text") {
    throw badRequest(
      `response_format type ${JSON.stringify(formatType.slice(0, 40))} is not supported (no guided decoding)`,
      "response_format",
      "unsupported_parameter",
    );
  }
  return { params, paramNames, stream, includeUsage, priority, cacheSalt, n };
}

function checkChars(text: string, limits: ModelLimits, param: string): void {
  if (text.length > limits.maxPromptChars) {
    throw promptTooLong(
      `This model's maximum context length is ${limits.maxModelLen} tokens, but the prompt has ${text.length} ` +
        `characters, more than that many tokens can hold.`,
      param,
    );
  }
}

function tokenIdList(v: unknown[], limits: ModelLimits, param: string): number[] {
  for (const id of v) {
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0 || id >= limits.vocabSize) {
      throw badRequest(
        `${param} token ids must be integers in [0, ${limits.vocabSize}), got ${describe(id)}`,
        param,
        "invalid_value",
      );
    }
  }
  return v as number[];
}

/** `prompt`: a string, a list of strings, a list of token ids, or a list of lists of token ids. */
export function parsePrompts(v: unknown, limits: ModelLimits): Prompt[] {
  const param = "prompt";
  if (v === undefined) throw badRequest("prompt is required", param, "missing_required_parameter");
  if (typeof v === "string") {
    checkChars(v, limits, param);
    return [{ text: v }];
  }
  const what = "a string, a list of strings, a list of token ids or a list of lists of token ids";
  if (!Array.isArray(v)) throw badRequest(`prompt must be ${what}, got ${describe(v)}`, param, "invalid_type");
  if (v.length === 0) throw badRequest("prompt must not be an empty list", param, "invalid_value");
  if (typeof v[0] === "number") return [{ tokenIds: tokenIdList(v, limits, param) }];
  if (v.length > MAX_BATCH_PROMPTS) {
    throw badRequest(`prompt may hold at most ${MAX_BATCH_PROMPTS} prompts, got ${v.length}`, param, "invalid_value");
  }
  if (typeof v[0] === "string") {
    return v.map((s) => {
      if (typeof s !== "string")
        throw badRequest(`prompt must be ${what}; the list mixes types`, param, "invalid_type");
      checkChars(s, limits, param);
      return { text: s };
    });
  }
  return v.map((ids) => {
    if (!Array.isArray(ids))
      throw badRequest(`prompt must be ${what}, got a list of ${describe(ids)}`, param, "invalid_type");
    if (ids.length === 0) throw badRequest("prompt token id lists must not be empty", param, "invalid_value");
    return { tokenIds: tokenIdList(ids, limits, param) };
  });
}

/** Message content: a string, or a list of `{type: "text", text}` parts (joined as the chat template does). */
function messageContent(m: Fields, role: string): string {
  const key = "content";
  const v = m.raw(key);
  if (v === undefined) {
    // An assistant message may carry tool calls instead of content.
    if (role === "assistant") return "";
    throw badRequest(`${m.name(key)} is required`, m.name(key), "missing_required_parameter");
  }
  if (typeof v === "string") return v;
  if (!Array.isArray(v)) m.fail(key, "a string or a list of content parts");
  const texts: string[] = [];
  for (let j = 0; j < v.length; j++) {
    const part = v[j];
    const name = `${m.name(key)}[${j}]`;
    if (!isPlainObject(part))
      throw badRequest(`${name} must be an object, got ${describe(part)}`, name, "invalid_type");
    const pf = new Fields(part, `${name}.`);
    const type = pf.string("type");
    if (type !== "text") {
      throw badRequest(
        `${name}.type ${JSON.stringify(type ?? null)} is not supported (this server takes text parts only)`,
        `${name}.type`,
        "unsupported_parameter",
      );
    }
    const text = pf.string("text");
    if (text === undefined) throw badRequest(`${name}.text is required`, `${name}.text`, "missing_required_parameter");
    texts.push(text);
  }
  return texts.join(TEXT_PART_SEPARATOR);
}

export function parseMessages(v: unknown, limits: ModelLimits): ChatMessage[] {
  const param = "messages";
  if (v === undefined) throw badRequest("messages is required", param, "missing_required_parameter");
  if (!Array.isArray(v))
    throw badRequest(`messages must be a list of messages, got ${describe(v)}`, param, "invalid_type");
  if (v.length === 0) throw badRequest("messages must not be empty", param, "invalid_value");
  if (v.length > MAX_MESSAGES) {
    throw badRequest(`messages may hold at most ${MAX_MESSAGES} messages`, param, "invalid_value");
  }
  let chars = 0;
  const out: ChatMessage[] = [];
  for (let i = 0; i < v.length; i++) {
    const item = v[i];
    const name = `messages[${i}]`;
    if (!isPlainObject(item))
      throw badRequest(`${name} must be an object, got ${describe(item)}`, name, "invalid_type");
    const m = new Fields(item, `${name}.`);
    const role = m.string("role");
    if (role === undefined) throw badRequest(`${name}.role is required`, `${name}.role`, "missing_required_parameter");
    if (!CHAT_ROLES.has(role)) {
      throw badRequest(
        `${name}.role must be one of ${[...CHAT_ROLES].join(", ")}, got ${JSON.stringify(role.slice(0, 30))}`,
        `${name}.role`,
        "invalid_value",
      );
    }
    const content = messageContent(m, role);
    chars += content.length;
    out.push({ role, content });
  }
  if (chars > limits.maxPromptChars) {
    throw promptTooLong(
      `This model's maximum context length is ${limits.maxModelLen} tokens, but the messages have ${chars} ` +
        `characters, more than that many tokens can hold.`,
      param,
    );
  }
  return out;
}

export function parseCompletionRequest(body: JsonObject, limits: ModelLimits): GenRequest {
  const f = new Fields(body);
  const common = commonFields(f, limits, "completion");
  if (f.bool("echo") === true) throw badRequest("echo is not supported", "echo", "unsupported_parameter");
  const suffix = f.string("suffix");
  if (suffix !== undefined && suffix !== "")
    throw badRequest("suffix is not supported", "suffix", "unsupported_parameter");
  // Legacy logprobs: the number of alternatives per token (the engine checks the range).
  const logprobs = f.raw("logprobs");
  if (logprobs !== undefined) common.params.logprobs = logprobs as number;
  const prompts = parsePrompts(f.raw("prompt"), limits);
  return {
    kind: "completion",
    prompts,
    promptParam: "prompt",
    params: common.params,
    n: common.n,
    stream: common.stream,
    includeUsage: common.includeUsage,
    logprobs: typeof logprobs === "number" ? logprobs : null,
    priority: common.priority,
    cacheSalt: common.cacheSalt,
    paramNames: common.paramNames,
  };
}

export function parseChatRequest(body: JsonObject, limits: ModelLimits): GenRequest {
  const f = new Fields(body);
  const common = commonFields(f, limits, "chat");
  const wantLogprobs = f.bool("logprobs") ?? false;
  const top = f.raw("top_logprobs");
  if (top !== undefined && !wantLogprobs) {
    throw badRequest("top_logprobs requires logprobs to be true", "top_logprobs", "invalid_value");
  }
  if (wantLogprobs) common.params.logprobs = (top ?? 0) as number;
  common.paramNames.logprobs = "top_logprobs";
  const addGenerationPrompt = f.bool("add_generation_prompt") ?? true;
  const messages = parseMessages(f.raw("messages"), limits);
  return {
    kind: "chat",
    prompts: [{ messages, addGenerationPrompt }],
    promptParam: "messages",
    params: common.params,
    n: common.n,
    stream: common.stream,
    includeUsage: common.includeUsage,
    logprobs: wantLogprobs ? (typeof top === "number" ? top : 0) : null,
    priority: common.priority,
    cacheSalt: common.cacheSalt,
    paramNames: common.paramNames,
  };
}
