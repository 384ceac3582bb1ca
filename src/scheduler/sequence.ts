import type { FinishReason, SamplingParams } from "../engine/types.ts";
import type { BlockHash } from "../kv/block-hash.ts";
import type { KvSequence } from "../kv/kv-cache-manager.ts";

export interface RequestOptions {
  /** Lower = more important. Default 0. */
  priority?: number;
  /** Milliseconds on any monotonic clock; default performance.now(). Earlier = served first among equals. */
  arrivalTime?: number;
  cacheSalt?: string | null;
}

/** One generation request: a prompt, its sampling parameters, and its n sequences (created lazily). */
export class Request {
  readonly id: string;
  readonly promptTokenIds: number[];
  readonly params: SamplingParams;
  /** Lower = more important, default 0. */
  readonly priority: number;
  readonly arrivalTime: number;
  readonly cacheSalt: string | null;
  /** Sequence 0 (created by Scheduler.addRequest), then the children forked from it (index 1..n-1). */
  readonly sequences: Sequence[] = [];
  /** Prompt tokens of sequence 0 served by the prefix cache when it was first scheduled. */
  numCachedTokens = 0;
  /** Position in the order requests were added; set by the scheduler, breaks arrivalTime ties. */
  arrivalOrder = 0;

  constructor(id: string, promptTokenIds: number[], params: SamplingParams, options: RequestOptions = {}) {
    this.id = id;
    this.promptTokenIds = promptTokenIds;
    this.params = params;
    this.priority = options.priority ?? 0;
    this.arrivalTime = options.arrivalTime ?? performance.now();
    this.cacheSalt = options.cacheSalt ?? null;
  }

  /** True once every sequence created so far has finished. */
  get isFinished(): boolean {
    for (const s of this.sequences) if (s.status !== "finished") return false;
    return true;
  }
}

export type SeqStatus = "waiting" | "running" | "finished";

/**
 * One generated sequence: the prompt plus its output tokens, and its scheduling/KV state.
 *
 *   tokenIds:           [ p0 p1 p2 p3 p4 | o0 o1 o2 ]   numPromptTokens = 5, numOutputTokens = 3
 *   numComputedTokens:  7 → KV of tokens 0..6 is cached; token 7 (o2, just sampled) is the next input
 */
export class Sequence implements KvSequence {
  readonly seqId: number;
  readonly request: Request;
  /** 0..n-1 within the request. */
  readonly index: number;
  /** Prompt then output; only ever appended to. */
  readonly tokenIds: number[];
  readonly numPromptTokens: number;
  numComputedTokens = 0;
  /**
   * Speculative decoding with a draft model: tokens whose draft-model KV is in the draft's cache (same
   * block table, the draft's own KV pool). Owned by the draft proposer; the scheduler resets it with
   * numComputedTokens (preemption) and keeps it <= numComputedTokens.
   */
  numDraftComputedTokens = 0;
  /** Block table (owned by the KvCacheManager). */
  blockIds: number[] = [];
  /** Chained hashes of the full blocks of tokenIds, filled lazily (owned by the KvCacheManager). */
  blockHashes: BlockHash[] = [];
  status: SeqStatus = "waiting";
  finishReason: FinishReason | null = null;
  /** The EOS or stop token that finished it with "stop", if any. */
  stopTokenId: number | null = null;
  /** Times this sequence was preempted (and recomputed). */
  numPreemptions = 0;
  /** Per-sequence state the engine may attach (e.g. the sampler's seeded PRNG). */
  rng: unknown = null;

  constructor(seqId: number, request: Request, index: number, tokenIds: number[], numPromptTokens: number) {
    this.seqId = seqId;
    this.request = request;
    this.index = index;
    this.tokenIds = tokenIds;
    this.numPromptTokens = numPromptTokens;
  }

  get cacheSalt(): string | null {
    return this.request.cacheSalt;
  }

  get numTokens(): number {
    return this.tokenIds.length;
  }

  get numOutputTokens(): number {
    return this.tokenIds.length - this.numPromptTokens;
  }

  /** A fresh copy of the output tokens. */
  get outputTokenIds(): number[] {
    return this.tokenIds.slice(this.numPromptTokens);
  }

  get lastTokenId(): number {
    return this.tokenIds[this.tokenIds.length - 1];
  }
}
