/** POST /v1/chat/completions. */
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
import { chatLogprobs, type TokenStrings } from "./logprobs.ts";
import { parseChatRequest } from "./requests.ts";
import { requireLoaded } from "./status.ts";

const OBJECT = "chat.completion";
const CHUNK_OBJECT = "chat.completion.chunk";

function chatPresenter(strings: TokenStrings, k: number | null): Presenter {
  const chunk = (meta: ResponseMeta, choices: object[], includeUsage: boolean) =>
    envelope(meta, CHUNK_OBJECT, choices, includeUsage ? { usage: null } : {});
  return {
    idPrefix: "chatcmpl",
    openingChunks: (meta, choices, includeUsage) =>
      choices.map((c) =>
        chunk(
          meta,
          [{ index: c.index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
          includeUsage,
        ),
      ),
    deltaChunk(meta, choice, delta, includeUsage) {
      const hasLogprobs = k !== null && (delta.logprobs?.length ?? 0) > 0;
      if (delta.text === "" && !delta.finishReason && !hasLogprobs) return null;
      const logprobs = hasLogprobs ? { content: chatLogprobs(strings, delta.logprobs!, k!) } : null;
      const d = delta.text !== "" || !delta.finishReason ? { content: delta.text } : {};
      return chunk(
        meta,
        [{ index: choice.index, delta: d, logprobs, finish_reason: delta.finishReason ?? null }],
        includeUsage,
      );
    },
    usageChunk: (meta: ResponseMeta, usage: Usage) => envelope(meta, CHUNK_OBJECT, [], { usage }),
    body: (meta: ResponseMeta, choices: ChoiceState[], usage: Usage) =>
      envelope(
        meta,
        OBJECT,
        choices.map((c) => ({
          index: c.index,
          message: { role: "assistant", content: c.text, refusal: null },
          logprobs: k === null ? null : { content: chatLogprobs(strings, c.logprobs, k) },
          finish_reason: c.finishReason,
        })),
        { usage },
      ),
  };
}

export const handleChat: Handler = async (scope) => {
  const loaded = requireLoaded(scope.ctx);
  const body = await readJsonBody(scope.req, scope.ctx.config.maxBodyBytes);
  const request = parseChatRequest(body, loaded.limits);
  await serveGeneration(scope, loaded, request, chatPresenter(loaded.strings, request.logprobs));
};
