/**
 * Speculative decoding as the engine core sees it: how many draft tokens to reserve this step (auto-off
 * above a batch size), the proposer, the verifier, and the counters behind EngineStats' spec fields
 * (exported by the server as vllm:spec_decode_num_draft_tokens_total,
 * vllm:spec_decode_num_accepted_tokens_total, vllm:spec_decode_num_drafts_total and
 * vllm:spec_decode_num_accepted_tokens_per_pos).
 *
 * One step of the engine with speculation:
 *
 *   plan  = scheduler.schedule(spec.numSpecTokens(scheduler.numRunning))
 *   probs = spec.propose(plan)          (draft model / n-gram; always call: it mirrors KV copies)
 *   logits = runner.execute(plan)       (k + 1 rows per speculating sequence)
 *   n = spec.verify(seq, item, rows, probs[i], run, logprobs)   per speculating item
 *   scheduler.update(plan, sampled)     (run arrays for speculating sequences)
 *   spec.settle(seq, n, k)              (draft KV bookkeeping for sequences still running)
 */
import type { TokenLogprob } from "../engine/types.ts";
import type { ScheduledItem, StepPlan } from "../scheduler/scheduler.ts";
import type { Sequence } from "../scheduler/sequence.ts";
import type { SpecConfig } from "./config.ts";
import type { Proposer } from "./proposer.ts";
import { SpecVerifier } from "./verifier.ts";

export interface SpecStats {
  /** Draft tokens verified (vLLM: num_draft_tokens). */
  proposed: number;
  /** Draft tokens accepted by verification (before any stop truncated the run). */
  accepted: number;
  /** Verifications: (sequence, step) pairs that verified at least one draft token (vLLM: num_drafts). */
  steps: number;
  /** acceptedPerPosition[j]: times the draft token at position j (0-based) was accepted. */
  acceptedPerPosition: number[];
}

export class SpeculativeDecoder {
  readonly #verifier: SpecVerifier;
  readonly stats: SpecStats;

  constructor(
    readonly config: SpecConfig,
    readonly proposer: Proposer,
    vocabSize: number,
    eosTokenIds: readonly number[],
  ) {
    this.#verifier = new SpecVerifier(vocabSize, eosTokenIds);
    this.stats = {
      proposed: 0,
      accepted: 0,
      steps: 0,
      acceptedPerPosition: new Array<number>(config.numSpeculativeTokens).fill(0),
    };
  }

  /** Draft tokens per sequence to reserve in a step that starts with `numRunning` running sequences. */
  numSpecTokens(numRunning: number): number {
    const off = this.config.disableByBatchSize;
    return off > 0 && numRunning > off ? 0 : this.config.numSpeculativeTokens;
  }

  /** Mirrors KV copies and proposes draft tokens for the plan's speculating items (see Proposer). */
  propose(plan: StepPlan): (Float64Array | null)[] {
    this.proposer.beginStep(plan);
    return this.proposer.propose(plan);
  }

  /**
   * Verifies a speculating item (specTokenIds non-empty) against its k + 1 logits rows; fills `run`
   * (and `logprobs`) and returns the number of accepted draft tokens. Counts the stats.
   */
  verify(
    seq: Sequence,
    item: ScheduledItem,
    rows: Float32Array,
    q: Float64Array | null,
    run: number[],
    logprobs: TokenLogprob[] | null,
  ): number {
    const drafts = item.specTokenIds;
    const n = this.#verifier.verify(seq, drafts, rows, q, run, logprobs);
    const s = this.stats;
    s.proposed += drafts.length;
    s.accepted += n;
    s.steps++;
    for (let j = 0; j < n; j++) s.acceptedPerPosition[j]++;
    return n;
  }

  /** After `update`: draft bookkeeping for a verified sequence that is still running. */
  settle(seq: Sequence, numAccepted: number, numProposed: number): void {
    if (seq.status === "running") this.proposer.accepted(seq, numAccepted, numProposed);
  }
}
