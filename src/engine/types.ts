/**
 * Types shared by the engine client, the engine core, the sampler and the server.
 * Plain data only: everything here crosses the worker-thread boundary by structured clone.
 */

/** Per-request sampling parameters, already validated (see `normalizeSamplingParams`). */
export interface SamplingParams {
  /** Number of sequences to generate from the prompt. */
  n: number;
  /** 0 = greedy. */
  temperature: number;
  /** 1 = off. */
  topP: number;
  /** 0 or -1 = off. */
  topK: number;
  /** 0 = off. */
  minP: number;
  /** 1 = off; >1 discourages tokens that appear in prompt or output (HF/vLLM semantics). */
  repetitionPenalty: number;
  /** OpenAI semantics over output tokens: logit -= presence * (count>0) + frequency * count. */
  presencePenalty: number;
  frequencyPenalty: number;
  /** token id → bias added to its logit. */
  logitBias: Record<number, number>;
  /** Per-request seed; null = random. Same seed ⇒ same output whatever else is batched. */
  seed: number | null;
  maxTokens: number;
  minTokens: number;
  /** Stop strings: the text is cut before them and they are never emitted. */
  stop: string[];
  /** Extra stop token ids (besides EOS unless ignoreEos). */
  stopTokenIds: number[];
  ignoreEos: boolean;
  /** null = no logprobs; k >= 0 = logprob of the sampled token plus its k most likely alternatives. */
  logprobs: number | null;
  /** Include the stop string in the output text. */
  includeStopStrInOutput: boolean;
  skipSpecialTokens: boolean;
}

export type FinishReason = "stop" | "length" | "abort" | "error";

export interface TokenLogprob {
  token: number;
  logprob: number;
  /** Most likely alternatives at this position (including possibly the sampled token). */
  top: { token: number; logprob: number }[];
}

/** What the engine core emits per sequence per step (token ids only; text is made in the client). */
export interface SeqDelta {
  requestId: string;
  /** Index of the sequence within the request (0..n-1). */
  index: number;
  tokenIds: number[];
  logprobs: TokenLogprob[] | null;
  /** Set when the sequence has finished. */
  finishReason: FinishReason | null;
  /** The stop token id that ended it, if any. */
  stopTokenId?: number;
  numPromptTokens: number;
  /** Prompt tokens served from the prefix cache (first delta only). */
  numCachedTokens?: number;
  error?: string;
}

/** What the client's generate() yields: one item per sequence update, with text. */
export interface GenerationDelta extends SeqDelta {
  /** New text (stop strings removed, never half a UTF-8 character). */
  text: string;
}

export type Prompt =
  | { text: string }
  | { tokenIds: number[] }
  | { messages: ChatMessage[]; addGenerationPrompt?: boolean };

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool" | string;
  content: string;
}

export interface GenerateOptions {
  requestId?: string;
  priority?: number;
  cacheSalt?: string;
  /** Aborts the request when signalled. */
  signal?: AbortSignal;
}

export interface EngineStats {
  numRunning: number;
  numWaiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  kvBlockSize: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  numPreemptions: number;
  promptTokens: number;
  generationTokens: number;
  /** Requests finished, by reason. */
  finished: Record<string, number>;
  steps: number;
  /** Tokens run through the model (prompt chunks, recomputation and decode), for prefix-cache accounting. */
  computedTokens: number;
  // Speculative decoding (0 / [] when off; optional only for older producers of this type). Exported as
  // vllm:spec_decode_num_draft_tokens_total, vllm:spec_decode_num_accepted_tokens_total,
  // vllm:spec_decode_num_drafts_total and vllm:spec_decode_num_accepted_tokens_per_pos{position}.
  // Acceptance rate = specAcceptedTokens / specProposedTokens; mean tokens emitted per verification =
  // 1 + specAcceptedTokens / specSteps.
  /** Draft tokens proposed and verified. */
  specProposedTokens?: number;
  /** Draft tokens accepted by verification. */
  specAcceptedTokens?: number;
  /** Verification steps: (sequence, step) pairs that verified at least one draft token. */
  specSteps?: number;
  /** Accepted draft tokens by position in the draft (0 = first draft token). */
  specAcceptedPerPosition?: number[];
}

export interface EngineInfo {
  modelName: string;
  modelDir: string;
  backend: string;
  dtype: string;
  maxModelLen: number;
  blockSize: number;
  numBlocks: number;
  kvCapacityTokens: number;
  /** Element type of the KV cache (--kv-cache-dtype, "auto" resolved). */
  kvCacheDtype: string;
  vocabSize: number;
  scheduler: string;
  /** Speculative decoding in use, e.g. "draft tiny-llama-draft, k=4, off above 4 seqs"; absent = off. */
  speculative?: string;
}
