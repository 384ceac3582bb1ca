/**
 * The Engine contract: what the server, the CLI and library users program against.
 * `EngineClient` (engine-client.ts) implements it over an engine core running on its own thread.
 */
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { EngineInfo, EngineStats, GenerateOptions, GenerationDelta, Prompt, SamplingParams } from "./types.ts";

export interface Engine {
  readonly info: EngineInfo;
  readonly tokenizer: Tokenizer;
  /**
   * Starts a request. The iterable yields deltas for each of the request's `n` sequences (check
   * `delta.index`) until every sequence has a finishReason. Invalid parameters or prompts reject
   * before anything is queued: `ParamError` (src/sampler/params.ts), `PromptTooLongError`,
   * `RequestRejectedError` (src/scheduler/scheduler.ts). Breaking out of the loop, or the signal,
   * aborts the request and frees its KV blocks.
   */
  generate(prompt: Prompt, params: Partial<SamplingParams>, opts?: GenerateOptions): AsyncIterable<GenerationDelta>;
  /** Aborts a request by id; unknown ids are ignored. */
  abort(requestId: string): void;
  /** Requests accepted but not yet scheduled (for admission control / 429). Synchronous and cheap. */
  numWaiting(): number;
  /** Current stats, fresh from the engine core. */
  stats(): Promise<EngineStats>;
  /** Stops the engine thread; pending requests finish with reason "abort". */
  close(): Promise<void>;
}

/** The prompt is longer than the model allows. */
export class PromptTooLongError extends Error {
  constructor(
    readonly promptTokens: number,
    readonly maxModelLen: number,
  ) {
    super(
      `the prompt has ${promptTokens} tokens, but this model's context is ${maxModelLen} tokens ` +
        `(at least one token must be left for the completion)`,
    );
    this.name = "PromptTooLongError";
  }
}
