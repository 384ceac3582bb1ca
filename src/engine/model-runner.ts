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
import type { StepMeta } from "../backends/backend.ts";
import type { LlamaGraph } from "../models/graph.ts";
import type { StepPlan } from "../scheduler/scheduler.ts";
import type { Sequence } from "../scheduler/sequence.ts";

export interface RunnerLimits {
  maxTokens: number;
  maxSeqs: number;
  maxModelLen: number;
  blockSize: number;
}

export interface StepLogits {
  /** [rowStart[samplers.length], vocab] */
  logits: Float32Array;
  /** The sequences that sample, in plan order. */
  samplers: Sequence[];
  /** Sampler i owns rows rowStart[i] .. rowStart[i + 1] - 1 (one row, or 1 + its draft tokens). */
  rowStart: Int32Array;
}

export class ModelRunner {
  readonly #tokenIds: Int32Array;
  readonly #positions: Int32Array;
  readonly #slots: Int32Array;
  readonly #queryStart: Int32Array;
  readonly #seqLens: Int32Array;
  readonly #blockTables: Int32Array;
  readonly #logitRows: Int32Array;
  readonly #rowStart: Int32Array;
  readonly #maxBlocksPerSeq: number;
  readonly #samplers: Sequence[] = [];

  constructor(
    readonly graph: LlamaGraph,
    readonly limits: RunnerLimits,
  ) {
    const { maxTokens, maxSeqs, maxModelLen, blockSize } = limits;
    this.#maxBlocksPerSeq = Math.ceil(maxModelLen / blockSize) + 1;
    this.#tokenIds = new Int32Array(maxTokens);
    this.#positions = new Int32Array(maxTokens);
    this.#slots = new Int32Array(maxTokens);
    this.#queryStart = new Int32Array(maxSeqs + 1);
    this.#seqLens = new Int32Array(maxSeqs);
    this.#blockTables = new Int32Array(maxSeqs * this.#maxBlocksPerSeq);
    this.#logitRows = new Int32Array(maxTokens);
    this.#rowStart = new Int32Array(maxSeqs + 1);
  }

  /** Executes the plan's block copies, then the forward pass. */
  execute(plan: StepPlan): StepLogits {
    const { blockSize } = this.limits;
    const maxBlocks = this.#maxBlocksPerSeq;
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
      const blocks = seq.blockIds;
      const numSpec = specTokenIds.length;
      this.#queryStart[s] = t;
      for (let j = 0; j < numNewTokens + numSpec; j++, t++) {
        const pos = start + j;
        this.#tokenIds[t] = j < numNewTokens ? seq.tokenIds[pos] : specTokenIds[j - numNewTokens];
        this.#positions[t] = pos;
        this.#slots[t] = blocks[Math.floor(pos / blockSize)] * blockSize + (pos % blockSize);
      }
      this.#seqLens[s] = start + numNewTokens + numSpec;
      const row = s * maxBlocks;
      for (let b = 0; b < blocks.length; b++) this.#blockTables[row + b] = blocks[b];
      if (sample) {
        this.#rowStart[samplers.length] = nLogits;
        for (let j = numSpec; j >= 0; j--) this.#logitRows[nLogits++] = t - 1 - j;
        samplers.push(seq);
      }
    }
    this.#rowStart[samplers.length] = nLogits;
    this.#queryStart[items.length] = t;
    const meta: StepMeta = {
      numTokens: t,
      tokenIds: this.#tokenIds.subarray(0, t),
      positions: this.#positions.subarray(0, t),
      slotMapping: this.#slots.subarray(0, t),
      numSeqs: items.length,
      queryStart: this.#queryStart.subarray(0, items.length + 1),
      seqLens: this.#seqLens.subarray(0, items.length),
      blockTables: this.#blockTables.subarray(0, items.length * maxBlocks),
      maxBlocksPerSeq: maxBlocks,
    };
    const logits = this.graph.forward(meta, this.#logitRows.subarray(0, nLogits));
    return { logits, samplers, rowStart: this.#rowStart.subarray(0, samplers.length + 1) };
  }
}
