/**
 * Preallocated flat inputs of one forward pass (token ids, positions, slot mapping, per-sequence query
 * starts, lengths and block tables), filled token by token and handed to the graph as subarray views: a
 * step allocates nothing but the views. Shared by the model runner and the draft proposer.
 */
import type { StepMeta } from "../backends/backend.ts";

export interface StepLimits {
  maxTokens: number;
  maxSeqs: number;
  maxModelLen: number;
  blockSize: number;
}

export class StepBuffers {
  readonly maxBlocksPerSeq: number;
  readonly #blockSize: number;
  readonly #tokenIds: Int32Array;
  readonly #positions: Int32Array;
  readonly #slots: Int32Array;
  readonly #queryStart: Int32Array;
  readonly #seqLens: Int32Array;
  readonly #blockTables: Int32Array;

  constructor({ maxTokens, maxSeqs, maxModelLen, blockSize }: StepLimits) {
    this.#blockSize = blockSize;
    this.maxBlocksPerSeq = Math.ceil(maxModelLen / blockSize) + 1;
    this.#tokenIds = new Int32Array(maxTokens);
    this.#positions = new Int32Array(maxTokens);
    this.#slots = new Int32Array(maxTokens);
    this.#queryStart = new Int32Array(maxSeqs + 1);
    this.#seqLens = new Int32Array(maxSeqs);
    this.#blockTables = new Int32Array(maxSeqs * this.maxBlocksPerSeq);
  }

  /** Row t of the step: `token` at position `pos` of a sequence whose KV blocks are `blockIds`. */
  token(t: number, token: number, pos: number, blockIds: readonly number[]): void {
    const bs = this.#blockSize;
    this.#tokenIds[t] = token;
    this.#positions[t] = pos;
    this.#slots[t] = blockIds[Math.floor(pos / bs)] * bs + (pos % bs);
  }

  /** Sequence s: its rows start at `queryStart`, it is `seqLen` tokens long after the step, in `blockIds`. */
  sequence(s: number, queryStart: number, seqLen: number, blockIds: readonly number[]): void {
    this.#queryStart[s] = queryStart;
    this.#seqLens[s] = seqLen;
    this.#blockTables.set(blockIds, s * this.maxBlocksPerSeq);
  }

  /** The step's metadata over the first numTokens rows and numSeqs sequences. */
  meta(numTokens: number, numSeqs: number): StepMeta {
    this.#queryStart[numSeqs] = numTokens;
    return {
      numTokens,
      tokenIds: this.#tokenIds.subarray(0, numTokens),
      positions: this.#positions.subarray(0, numTokens),
      slotMapping: this.#slots.subarray(0, numTokens),
      numSeqs,
      queryStart: this.#queryStart.subarray(0, numSeqs + 1),
      seqLens: this.#seqLens.subarray(0, numSeqs),
      blockTables: this.#blockTables.subarray(0, numSeqs * this.maxBlocksPerSeq),
      maxBlocksPerSeq: this.maxBlocksPerSeq,
    };
  }
}
