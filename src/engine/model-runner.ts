/**
 * The model runner turns a scheduler plan into flat step inputs (token ids, positions, slot mapping,
 * block tables), runs the graph, and hands back one logits row per sequence that samples this step.
 *
 *   plan.items:   [ A: prefill chunk of 5 | B: decode 1 | C: chunk of 3 (not last → no sample) ]
 *   tokenIds:     [ a a a a a | b | c c c ]
 *   queryStart:   [ 0, 5, 6, 9 ]
 *   logitRows:    [ 4, 5 ]            (last row of A and of B)
 *
 * A speculating item (decode token x plus draft tokens d1..dk) contributes k + 1 rows, all sampled:
 *
 *   plan.items:   [ A: decode x + draft d1 d2 | B: decode 1 ]
 *   tokenIds:     [ x d1 d2 | b ]      positions numComputed .. numComputed + 2 of A
 *   logitRows:    [ 0, 1, 2, 3 ]      rowStart: [ 0, 3, 4 ]   (A verifies with rows 0..2)
 *
 * When every sequence that samples is plainly greedy (sampler.ts isPlainGreedy, one sequence per request,
 * no draft tokens) and the backend offers argmaxRows, the argmax is taken where the logits are and only
 * the token ids come back (StepLogits.tokens): no logits read, no pass over them in JS.
 *
 * Buffers are preallocated for the scheduler's limits; a step allocates only the subarray views.
 */
import type { LlamaGraph } from "../models/graph.ts";
import { isPlainGreedy } from "../sampler/sampler.ts";
import type { StepPlan } from "../scheduler/scheduler.ts";
import type { Sequence } from "../scheduler/sequence.ts";
import { StepBuffers, type StepLimits } from "./step-buffers.ts";

export type RunnerLimits = StepLimits;

const NO_LOGITS = new Float32Array(0);

export interface StepLogits {
  /** [rowStart[samplers.length], vocab]; empty when `tokens` holds the step's greedy tokens. */
  logits: Float32Array;
  /** The greedy token of each sampler (one row each), taken on the backend; null: sample from `logits`. */
  tokens: Int32Array | null;
  /** The sequences that sample, in plan order. */
  samplers: Sequence[];
  /** Sampler i owns rows rowStart[i] .. rowStart[i + 1] - 1 (one row, or 1 + its draft tokens). */
  rowStart: Int32Array;
}

export class ModelRunner {
  readonly #step: StepBuffers;
  readonly #logitRows: Int32Array;
  readonly #rowStart: Int32Array;
  readonly #samplers: Sequence[] = [];
  readonly #tokens: Int32Array;

  constructor(
    readonly graph: LlamaGraph,
    readonly limits: RunnerLimits,
  ) {
    this.#step = new StepBuffers(limits);
    this.#logitRows = new Int32Array(limits.maxTokens);
    this.#rowStart = new Int32Array(limits.maxSeqs + 1);
    this.#tokens = new Int32Array(limits.maxSeqs);
  }

  /** Executes the plan's block copies, then the forward pass. */
  execute(plan: StepPlan): StepLogits {
    const step = this.#step;
    if (plan.blockCopies.src.length) {
      this.graph.copyBlocks(Int32Array.from(plan.blockCopies.src), Int32Array.from(plan.blockCopies.dst));
    }
    const samplers = this.#samplers;
    samplers.length = 0;
    let t = 0;
    let nLogits = 0;
    let greedy = this.graph.canArgmax;
    const items = plan.items;
    for (let s = 0; s < items.length; s++) {
      const { seq, numNewTokens, sample, specTokenIds } = items[s];
      const start = seq.numComputedTokens;
      const numSpec = specTokenIds.length;
      step.sequence(s, t, start + numNewTokens + numSpec, seq.blockIds);
      for (let j = 0; j < numNewTokens + numSpec; j++, t++) {
        const token = j < numNewTokens ? seq.tokenIds[start + j] : specTokenIds[j - numNewTokens];
        step.token(t, token, start + j, seq.blockIds);
      }
      if (sample) {
        this.#rowStart[samplers.length] = nLogits;
        for (let j = numSpec; j >= 0; j--) this.#logitRows[nLogits++] = t - 1 - j;
        samplers.push(seq);
        const p = seq.request.params;
        greedy &&= numSpec === 0 && p.n === 1 && isPlainGreedy(p, seq.numOutputTokens);
      }
    }
    this.#rowStart[samplers.length] = nLogits;
    const meta = step.meta(t, items.length);
    const rows = this.#logitRows.subarray(0, nLogits);
    const rowStart = this.#rowStart.subarray(0, samplers.length + 1);
    if (greedy && nLogits > 0) {
      const tokens = this.#tokens.subarray(0, nLogits);
      this.graph.forwardArgmax(meta, rows, tokens);
      return { logits: NO_LOGITS, tokens, samplers, rowStart };
    }
    return { logits: this.graph.forward(meta, rows), tokens: null, samplers, rowStart };
  }
}
