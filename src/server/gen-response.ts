/**
 * Drives a generation run into an HTTP response, streaming (SSE) or not. The route files (completions.ts,
 * chat.ts) supply a Presenter that knows their JSON shapes.
 */
import { randomBytes } from "node:crypto";
import type { FinishReason, GenerationDelta, TokenLogprob } from "../engine/types.ts";
import type { Loaded, RequestScope } from "./context.ts";
import { ApiError } from "./errors.ts";
import { GenerationRun } from "./generation.ts";
import type { GenRequest } from "./requests.ts";
import { clientGone, sendJson, watchClient } from "./respond.ts";
import { SseWriter } from "./sse.ts";

/** Accumulated state of one choice. */
export interface ChoiceState {
  index: number;
  text: string;
  numTokens: number;
  finishReason: FinishReason | null;
  /** Every logprob entry so far (non-streaming answers). */
  logprobs: TokenLogprob[];
  /** Length of the token strings reported so far (legacy text_offset). */
  tokenTextLength: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
}

/** An OpenAI response object or stream chunk: id, object, created, model, choices, then `extra` (usage). */
export function envelope(meta: ResponseMeta, object: string, choices: object[], extra: object = {}): object {
  return { id: meta.id, object, created: meta.created, model: meta.model, choices, ...extra };
}

export interface Presenter {
  readonly idPrefix: string;
  /** Stream chunks sent once, before the first delta (chat: the assistant role of every choice). */
  openingChunks(meta: ResponseMeta, choices: ChoiceState[], includeUsage: boolean): object[];
  /**
   * The stream chunk for one delta, called before `delta` is added to `choice`; null sends nothing.
   */
  deltaChunk(meta: ResponseMeta, choice: ChoiceState, delta: GenerationDelta, includeUsage: boolean): object | null;
  usageChunk(meta: ResponseMeta, usage: Usage): object;
  body(meta: ResponseMeta, choices: ChoiceState[], usage: Usage): object;
}

export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString("hex")}`;
}

/** Runs `request` and answers it; ApiErrors raised before anything was streamed propagate (→ JSON error). */
export async function serveGeneration(
  scope: RequestScope,
  loaded: Loaded,
  request: GenRequest,
  presenter: Presenter,
): Promise<void> {
  const { ctx, res } = scope;
  GenerationRun.admit(scope, loaded);
  const meta: ResponseMeta = {
    id: newId(presenter.idPrefix),
    created: Math.floor(Date.now() / 1000),
    model: loaded.limits.modelName,
  };
  const run = new GenerationRun(scope, loaded, request, meta.id);
  const log = scope.log.child({ genId: meta.id });
  let choices: ChoiceState[] = [];
  const promptTokens: number[] = new Array(request.prompts.length).fill(0);
  /** Prompt tokens served from the prefix cache, per prompt (null until the engine reports it). */
  const cachedTokens: (number | null)[] = new Array(request.prompts.length).fill(null);
  const sse = request.stream ? new SseWriter(res) : null;
  ctx.runs.add(run);
  const unwatch = watchClient(scope, () => run.abort("client"));
  try {
    await run.start();
    // Only now is n known to be valid (the engine checked it).
    choices = Array.from({ length: request.prompts.length * request.n }, (_, index) => ({
      index,
      text: "",
      numTokens: 0,
      finishReason: null,
      logprobs: [],
      tokenTextLength: 0,
    }));
    for await (const { prompt, delta } of run.items()) {
      const choice = choices[prompt * request.n + delta.index];
      if (choice === undefined || choice.finishReason !== null) continue;
      promptTokens[prompt] = delta.numPromptTokens;
      if (typeof delta.numCachedTokens === "number") {
        cachedTokens[prompt] = Math.max(cachedTokens[prompt] ?? 0, delta.numCachedTokens);
      }
      if (delta.finishReason === "error") {
        throw new ApiError(500, `generation failed: ${delta.error ?? "engine error"}`, { code: "generation_error" });
      }
      if (sse) {
        if (!sse.open) break; // client gone: leaving the loop aborts the run
        if (!sse.started) {
          sse.start();
          for (const c of presenter.openingChunks(meta, choices, request.includeUsage)) await sse.send(c);
        }
        const chunk = presenter.deltaChunk(meta, choice, delta, request.includeUsage);
        if (chunk) await sse.send(chunk);
      }
      choice.text += delta.text;
      choice.numTokens += delta.tokenIds.length;
      if (delta.logprobs && !sse) choice.logprobs.push(...delta.logprobs);
      if (delta.finishReason) choice.finishReason = delta.finishReason;
    }
    if (clientGone(scope)) return;
    const completion = choices.reduce((s, c) => s + c.numTokens, 0);
    const prompt = promptTokens.reduce((s, n) => s + n, 0);
    const usage: Usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
    if (cachedTokens.some((c) => c !== null)) {
      usage.prompt_tokens_details = { cached_tokens: cachedTokens.reduce<number>((s, c) => s + (c ?? 0), 0) };
    }
    if (run.cause === "drain") log.info("aborted by shutdown");
    if (sse) {
      if (!sse.started) {
        sse.start();
        for (const c of presenter.openingChunks(meta, choices, request.includeUsage)) await sse.send(c);
      }
      if (request.includeUsage) await sse.send(presenter.usageChunk(meta, usage));
      await sse.done();
    } else {
      sendJson(res, 200, presenter.body(meta, choices, usage));
    }
    log.debug({ usage, finish: choices.map((c) => c.finishReason) }, "generation done");
  } catch (e) {
    if (!sse?.started) throw e;
    // Headers are gone: report in the stream, then end it.
    const err =
      e instanceof ApiError ? e : new ApiError(500, "internal error while generating", { code: "internal_error" });
    if (!(e instanceof ApiError) || err.status >= 500) log.error({ err: e }, "generation failed mid-stream");
    await sse.send(err);
    await sse.done();
  } finally {
    ctx.runs.delete(run);
    unwatch();
  }
}
