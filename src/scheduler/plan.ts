/**
 * The scheduler's vocabulary: its policies and configuration, the refusal of a request that can never
 * fit, and the plan of one step (what each scheduled sequence computes, copy-on-write copies, preemptions).
 */
import type { BlockCopies } from "../kv/kv-cache-manager.ts";
import type { Sequence } from "./sequence.ts";

/**
 * "continuous": vLLM v1 iteration-level scheduling with chunked prefill and prefix caching (the real one).
 * "static":     batches of up to maxNumSeqs sequences run to completion before the next batch is admitted.
 * "naive":      one request at a time, KV reserved for maxModelLen tokens up front, no prefix caching,
 *               prompt never chunked (an HF-generate-like baseline).
 * The last two are kept on purpose, as benchmark baselines.
 */
export type SchedulerPolicy = "continuous" | "static" | "naive";

export interface SchedulerConfig {
  /** Most sequences running at once (a request with n > 1 counts n from its admission). */
  maxNumSeqs: number;
  /** Token budget of one step (prefill chunks + decode tokens). */
  maxNumBatchedTokens: number;
  /** A sequence finishes with "length" when it reaches this many tokens (prompt + output). */
  maxModelLen: number;
  blockSize: number;
  numBlocks: number;
  enablePrefixCaching: boolean;
  policy: SchedulerPolicy;
  eosTokenIds: number[];
}

/** Thrown by `addRequest` for a request that could never be served under this configuration. */
export class RequestRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RequestRejectedError";
  }
}

export interface ScheduledItem {
  seq: Sequence;
  /** Tokens computed this step: seq.tokenIds[seq.numComputedTokens, seq.numComputedTokens + numNewTokens). */
  numNewTokens: number;
  /** True when this chunk reaches the end of seq.tokenIds: the last row's logits are sampled. */
  sample: boolean;
  /**
   * Speculative decoding: KV slots (and budget) reserved for up to this many draft tokens after the
   * item's one new token (0 = not speculating; only decode items of running sequences speculate).
   */
  numSpecTokens: number;
  /**
   * The draft tokens to verify this step, at positions numComputedTokens + numNewTokens + j; filled in by
   * the engine's proposer after `schedule` (at most numSpecTokens; may stay empty).
   */
  specTokenIds: readonly number[];
}

/** specTokenIds of an item that verifies no draft tokens. */
export const NO_SPEC: readonly number[] = Object.freeze([]);

export interface StepPlan {
  /** Empty when nothing can run. */
  items: ScheduledItem[];
  /** Sum of items' numNewTokens + numSpecTokens (<= maxNumBatchedTokens). */
  numTokens: number;
  /** Copy-on-write block copies to execute (all layers) before this step's forward pass. */
  blockCopies: BlockCopies;
  /** Sequences preempted during this step (blocks freed, back to waiting, to be recomputed). */
  preempted: Sequence[];
  /**
   * Sequences the scheduler finished during this step with reason "length" because their tokens can
   * never fit the KV pool, even alone (only possible when numBlocks * blockSize < maxModelLen). Their
   * blocks are freed; report them like the sequences `update` returns.
   */
  finished: Sequence[];
}
