/** POST /v1/completions (OpenAI legacy completions, vLLM extensions). */
import { readJsonBody } from "./body.ts";
import type { Handler } from "./context.ts";
import {
  type ChoiceState,
  envelope,
  type Presenter,
  type ResponseMeta,
  serveGeneration,
  type Usage,
} from "./gen-response.ts";
import { type CompletionLogprobs, completionLogprobs, type TokenStrings } from "./logprobs.ts";
import { parseCompletionRequest } from "./requests.ts";
import { requireLoaded } from "./status.ts";

const OBJECT = "text_completion";

function completionsPresenter(strings: TokenStrings, k: number | null): Presenter {
  const logprobsOf = (entries: ChoiceState["logprobs"], offset: number): CompletionLogprobs | null =>
    k === null ? null : completionLogprobs(strings, entries, k, offset);
  return {
    idPrefix: "cmpl",
    openingChunks: () => [],
    deltaChunk(meta: ResponseMeta, choice, delta, includeUsage) {
      const hasLogprobs = k !== null && (delta.logprobs?.length ?? 0) > 0;
      if (delta.text === "" && !delta.finishReason && !hasLogprobs) return null;
      const logprobs = hasLogprobs ? logprobsOf(delta.logprobs!, choice.tokenTextLength) : null;
      if (logprobs) choice.tokenTextLength += logprobs.tokens.reduce((s, t) => s + t.length, 0);
      return envelope(
        meta,
        OBJECT,
        [{ index: choice.index, text: delta.text, logprobs, finish_reason: delta.finishReason ?? null }],
        includeUsage ? { usage: null } : {},
      );
    },
    usageChunk: (meta: ResponseMeta, usage: Usage) => envelope(meta, OBJECT, [], { usage }),
    body: (meta: ResponseMeta, choices: ChoiceState[], usage: Usage) =>
      envelope(
        meta,
        OBJECT,
        choices.map((c) => ({
          index: c.index,
          text: c.text,
          logprobs: logprobsOf(c.logprobs, 0),
          finish_reason: c.finishReason,
        })),
        { usage },
      ),
  };
}

export const handleCompletions: Handler = async (scope) => {
  const loaded = requireLoaded(scope.ctx);
  const body = await readJsonBody(scope.req, scope.ctx.config.maxBodyBytes);
  const request = parseCompletionRequest(body, loaded.limits);
  await serveGeneration(scope, loaded, request, completionsPresenter(loaded.strings, request.logprobs));
};
