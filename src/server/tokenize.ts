/** POST /tokenize and POST /detokenize, as vLLM has them. */
import { readJsonBody } from "./body.ts";
import type { Handler } from "./context.ts";
import { badRequest, fromEngineError } from "./errors.ts";
import { describe, Fields } from "./fields.ts";
import { checkModel, parseMessages } from "./requests.ts";
import { sendJson } from "./respond.ts";
import { requireLoaded } from "./status.ts";

/** Most ids one /detokenize call takes. */
export const MAX_DETOKENIZE_IDS = 1 << 20;

/**
 * `{prompt, add_special_tokens?}` or `{messages, add_generation_prompt?, add_special_tokens?}` →
 * `{count, max_model_len, tokens}` (plus `token_strs` with `return_token_strs`).
 */
export const handleTokenize: Handler = async ({ ctx, req, res }) => {
  const { engine, limits, strings } = requireLoaded(ctx);
  const f = new Fields(await readJsonBody(req, ctx.config.maxBodyBytes));
  checkModel(f, limits.modelName);
  const returnStrs = f.bool("return_token_strs") ?? false;
  let tokens: number[];
  try {
    if (f.has("messages")) {
      const messages = parseMessages(f.raw("messages"), limits);
      const addGenerationPrompt = f.bool("add_generation_prompt") ?? true;
      const addSpecialTokens = f.bool("add_special_tokens") ?? false;
      const text = engine.tokenizer.applyChatTemplate(messages, { addGenerationPrompt });
      tokens = engine.tokenizer.encode(text, { addSpecialTokens });
    } else {
      const prompt = f.string("prompt");
      if (prompt === undefined)
        throw badRequest("prompt or messages is required", "prompt", "missing_required_parameter");
      if (prompt.length > limits.maxPromptChars) {
        throw badRequest(
          `prompt is too long to tokenize here: ${prompt.length} characters (at most ${limits.maxPromptChars})`,
          "prompt",
          "invalid_value",
        );
      }
      tokens = engine.tokenizer.encode(prompt, { addSpecialTokens: f.bool("add_special_tokens") ?? true });
    }
  } catch (e) {
    throw fromEngineError(e, f.has("messages") ? "messages" : "prompt") ?? e;
  }
  sendJson(res, 200, {
    count: tokens.length,
    max_model_len: limits.maxModelLen,
    tokens,
    ...(returnStrs ? { token_strs: tokens.map((id) => strings.text(id)) } : {}),
  });
};

/** `{tokens}` → `{prompt}`. */
export const handleDetokenize: Handler = async ({ ctx, req, res }) => {
  const { engine, limits } = requireLoaded(ctx);
  const f = new Fields(await readJsonBody(req, ctx.config.maxBodyBytes));
  checkModel(f, limits.modelName);
  const ids = f.raw("tokens");
  if (ids === undefined) throw badRequest("tokens is required", "tokens", "missing_required_parameter");
  if (!Array.isArray(ids))
    throw badRequest(`tokens must be a list of token ids, got ${describe(ids)}`, "tokens", "invalid_type");
  if (ids.length > MAX_DETOKENIZE_IDS) {
    throw badRequest(`tokens may hold at most ${MAX_DETOKENIZE_IDS} ids`, "tokens", "invalid_value");
  }
  for (const id of ids) {
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0 || id >= limits.vocabSize) {
      throw badRequest(
        `tokens must be integers in [0, ${limits.vocabSize}), got ${describe(id)}`,
        "tokens",
        "invalid_value",
      );
    }
  }
  sendJson(res, 200, { prompt: engine.tokenizer.decode(ids as number[]) });
};
