/**
 * Validation and defaults for per-request sampling parameters (OpenAI / vLLM ranges).
 *
 * The input usually comes from untrusted JSON, so every field is checked at runtime whatever its static type:
 * numbers must be real finite JS numbers (no NaN, no Infinity, no numeric strings), booleans real booleans.
 */
import type { SamplingParams } from "../engine/types.ts";

/** A sampling parameter is invalid. `param` is the (camelCase) name of the offending field. */
export class ParamError extends Error {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
    this.name = "ParamError";
  }
}

/** Model-dependent limits the parameters are checked against. */
export interface ParamLimits {
  vocabSize: number;
  /** When given, maxTokens may not exceed it (the prompt-length check is the engine's). */
  maxModelLen?: number;
  /** maxTokens when the request does not set it. */
  defaultMaxTokens: number;
}

export const MAX_N = 128;
export const MAX_TEMPERATURE = 100;
export const MAX_STOP_STRINGS = 16;
export const MAX_STOP_STRING_LENGTH = 1024;
export const MAX_LOGPROBS = 20;
export const MAX_LOGIT_BIAS = 100;

const KNOWN_KEYS: ReadonlySet<string> = new Set<keyof SamplingParams>([
  "n",
  "temperature",
  "topP",
  "topK",
  "minP",
  "repetitionPenalty",
  "presencePenalty",
  "frequencyPenalty",
  "logitBias",
  "seed",
  "maxTokens",
  "minTokens",
  "stop",
  "stopTokenIds",
  "ignoreEos",
  "logprobs",
  "includeStopStrInOutput",
  "skipSpecialTokens",
]);

function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v);
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  return String(v);
}

/** A finite JS number (rejects NaN, ±Infinity and every non-number type). */
function num(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new ParamError(name, `${name} must be a finite number, got ${describe(v)}`);
  }
  return v;
}

function int(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) {
    throw new ParamError(name, `${name} must be an integer, got ${describe(v)}`);
  }
  return v;
}

function inRange(name: string, v: number, lo: number, hi: number, what = "a number"): number {
  if (v < lo || v > hi) throw new ParamError(name, `${name} must be ${what} in [${lo}, ${hi}], got ${v}`);
  return v;
}

function bool(name: string, v: unknown): boolean {
  if (typeof v !== "boolean") throw new ParamError(name, `${name} must be a boolean, got ${describe(v)}`);
  return v;
}

function tokenId(name: string, v: unknown, vocabSize: number): number {
  const id = int(name, v);
  if (id < 0 || id >= vocabSize) {
    throw new ParamError(name, `${name} contains token id ${id}, outside the vocabulary [0, ${vocabSize})`);
  }
  return id;
}

function logitBias(v: unknown, vocabSize: number): Record<number, number> {
  const name = "logitBias";
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ParamError(name, `${name} must be an object mapping token ids to biases, got ${describe(v)}`);
  }
  const out: Record<number, number> = {};
  for (const [key, bias] of Object.entries(v)) {
    // JSON object keys are strings: accept canonical decimal integers only ("7", not "07" or "7.0").
    if (!/^(0|[1-9]\d{0,15})$/.test(key) || Number(key) >= vocabSize) {
      throw new ParamError(name, `${name} key ${describe(key)} is not a token id in [0, ${vocabSize})`);
    }
    const b = num(name, bias);
    inRange(name, b, -MAX_LOGIT_BIAS, MAX_LOGIT_BIAS, `a bias (token ${key})`);
    out[Number(key)] = b;
  }
  return out;
}

function stopStrings(v: unknown): string[] {
  const name = "stop";
  // OpenAI accepts a single string as well as a list.
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list)) throw new ParamError(name, `${name} must be a string or a list of strings`);
  if (list.length > MAX_STOP_STRINGS) {
    throw new ParamError(name, `${name} may hold at most ${MAX_STOP_STRINGS} strings, got ${list.length}`);
  }
  return list.map((s) => {
    if (typeof s !== "string") throw new ParamError(name, `${name} entries must be strings, got ${describe(s)}`);
    if (s.length === 0) throw new ParamError(name, `${name} entries must not be empty`);
    if (s.length > MAX_STOP_STRING_LENGTH) {
      throw new ParamError(name, `${name} entries must be at most ${MAX_STOP_STRING_LENGTH} characters`);
    }
    return s;
  });
}

/**
 * Fills defaults and validates sampling parameters, returning a fresh object that shares nothing with
 * `input`. A field that is `undefined` or `null` takes its default (as in the OpenAI API).
 * Unknown fields are rejected, so a misspelled or snake_case name fails loudly instead of being ignored.
 *
 * @throws ParamError naming the first invalid parameter and why.
 */
export function normalizeSamplingParams(input: Partial<SamplingParams>, limits: ParamLimits): SamplingParams {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new ParamError("params", "sampling parameters must be an object");
  }
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!KNOWN_KEYS.has(key)) throw new ParamError(key, `unknown sampling parameter ${describe(key)}`);
  }
  const get = (key: keyof SamplingParams): unknown => raw[key];
  const has = (key: keyof SamplingParams): boolean => raw[key] !== undefined && raw[key] !== null;
  const { vocabSize } = limits;

  const n = has("n") ? inRange("n", int("n", get("n")), 1, MAX_N, "an integer") : 1;
  const temperature = has("temperature")
    ? inRange("temperature", num("temperature", get("temperature")), 0, MAX_TEMPERATURE)
    : 1;

  let topP = 1;
  if (has("topP")) {
    topP = num("topP", get("topP"));
    if (!(topP > 0 && topP <= 1)) throw new ParamError("topP", `topP must be in (0, 1], got ${topP}`);
  }

  let topK = 0;
  if (has("topK")) {
    topK = int("topK", get("topK"));
    if (topK < -1) throw new ParamError("topK", `topK must be -1 or 0 (disabled) or at least 1, got ${topK}`);
  }

  const minP = has("minP") ? inRange("minP", num("minP", get("minP")), 0, 1) : 0;

  let repetitionPenalty = 1;
  if (has("repetitionPenalty")) {
    repetitionPenalty = num("repetitionPenalty", get("repetitionPenalty"));
    if (!(repetitionPenalty > 0)) {
      throw new ParamError("repetitionPenalty", `repetitionPenalty must be greater than 0, got ${repetitionPenalty}`);
    }
  }

  const presencePenalty = has("presencePenalty")
    ? inRange("presencePenalty", num("presencePenalty", get("presencePenalty")), -2, 2)
    : 0;
  const frequencyPenalty = has("frequencyPenalty")
    ? inRange("frequencyPenalty", num("frequencyPenalty", get("frequencyPenalty")), -2, 2)
    : 0;

  const bias = has("logitBias") ? logitBias(get("logitBias"), vocabSize) : {};
  const seed = has("seed") ? int("seed", get("seed")) : null;

  let maxTokens = limits.defaultMaxTokens;
  if (has("maxTokens")) {
    maxTokens = int("maxTokens", get("maxTokens"));
    if (maxTokens < 1) throw new ParamError("maxTokens", `maxTokens must be at least 1, got ${maxTokens}`);
    if (limits.maxModelLen !== undefined && maxTokens > limits.maxModelLen) {
      throw new ParamError(
        "maxTokens",
        `maxTokens (${maxTokens}) exceeds the model's maximum context length (${limits.maxModelLen})`,
      );
    }
  }

  let minTokens = 0;
  if (has("minTokens")) {
    minTokens = int("minTokens", get("minTokens"));
    if (minTokens < 0) throw new ParamError("minTokens", `minTokens must be at least 0, got ${minTokens}`);
    if (minTokens > maxTokens) {
      throw new ParamError("minTokens", `minTokens (${minTokens}) must not exceed maxTokens (${maxTokens})`);
    }
  }

  const stop = has("stop") ? stopStrings(get("stop")) : [];

  let stopTokenIds: number[] = [];
  if (has("stopTokenIds")) {
    const v = get("stopTokenIds");
    if (!Array.isArray(v)) throw new ParamError("stopTokenIds", "stopTokenIds must be a list of token ids");
    stopTokenIds = v.map((id) => tokenId("stopTokenIds", id, vocabSize));
  }

  const logprobs = has("logprobs")
    ? inRange("logprobs", int("logprobs", get("logprobs")), 0, MAX_LOGPROBS, "an integer")
    : null;

  return {
    n,
    temperature,
    topP,
    topK,
    minP,
    repetitionPenalty,
    presencePenalty,
    frequencyPenalty,
    logitBias: bias,
    seed,
    maxTokens,
    minTokens,
    stop,
    stopTokenIds,
    ignoreEos: has("ignoreEos") ? bool("ignoreEos", get("ignoreEos")) : false,
    logprobs,
    includeStopStrInOutput: has("includeStopStrInOutput")
      ? bool("includeStopStrInOutput", get("includeStopStrInOutput"))
      : false,
    skipSpecialTokens: has("skipSpecialTokens") ? bool("skipSpecialTokens", get("skipSpecialTokens")) : true,
  };
}
