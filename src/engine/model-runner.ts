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
 * Buffers are preallocated for the scheduler's limits; a step allocates only the subarray views.
 */
import type { LlamaGraph } from "../models/graph.ts";
import type { StepPlan } from "../scheduler/scheduler.ts";
import type { Sequence } from "../scheduler/sequence.ts";
import { StepBuffers, type StepLimits } from "./step-buffers.ts";

export type RunnerLimits = StepLimits;

export interface StepLogits {
  /** [rowStart[samplers.length], vocab] */
  logits: Float32Array;
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

  constructor(
    readonly graph: LlamaGraph,
    readonly limits: RunnerLimits,
  ) {
    this.#step = new StepBuffers(limits);
    this.#logitRows = new Int32Array(limits.maxTokens);
    this.#rowStart = new Int32Array(limits.maxSeqs + 1);
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
      }
    }
    this.#rowStart[samplers.length] = nLogits;
    const meta = step.meta(t, items.length);
    const logits = this.graph.forward(meta, this.#logitRows.subarray(0, nLogits));
    return { logits, samplers, rowStart: this.#rowStart.subarray(0, samplers.length + 1) };
  }
}
