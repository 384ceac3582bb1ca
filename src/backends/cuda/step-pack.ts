/**
 * Packing a step's metadata into one int32 buffer for one pinned host→device copy (the CUDA backend's
 * beginStep). Pure bookkeeping, no GPU: the sections sit at offsets that depend only on capacities, so
 * the device pointers kernels get — and CUDA graphs bake in — stay the same from step to step until a
 * step needs more room (then the layout grows and `epoch` changes).
 *
 *   0                capT       2capT      3capT       +capS+1      +capS     +capS       +capTiles  +capTiles
 *   [ tokenIds      | positions | slotMap  | queryStart | seqLens  | decodeSeqs | tileSeq  | tileQ0   | blockTables
 *                                                                                                     capS × stride ]
 *
 * Only the used prefix is uploaded: everything up to the block tables, then numSeqs rows of `stride` ints.
 *
 * Attention work lists (computed here, on the host, once per step):
 *   decodeSeqs: the sequences with exactly one query token (split-K decode kernel)
 *   tiles:      (seq, q0) for every 16-query tile of the sequences with more (flash prefill kernel)
 *
 *   seq 0: 37 new tokens → tiles (0,0) (0,16) (0,32)      seq 1: 1 token → decodeSeqs [1]
 */
import type { StepMeta } from "../backend.ts";

/** Query rows per prefill tile; native/cuda/common.h PREFILL_TILE_Q must match. */
export const PREFILL_TILE = 16;

export interface MetaCapacity {
  tokens: number;
  seqs: number;
  /** Block table row stride (≥ every step's maxBlocksPerSeq while this layout lasts). */
  blocksPerSeq: number;
  tiles: number;
}

/** Int offsets of each section (the order of native MetaLayout). */
export interface MetaLayout {
  tokenIds: number;
  positions: number;
  slotMapping: number;
  queryStart: number;
  seqLens: number;
  blockTables: number;
  blockTableStride: number;
  decodeSeqs: number;
  tileSeq: number;
  tileQ0: number;
  /** Ints in the whole buffer. */
  capacity: number;
}

export function metaLayout(c: MetaCapacity): MetaLayout {
  const tokenIds = 0;
  const positions = tokenIds + c.tokens;
  const slotMapping = positions + c.tokens;
  const queryStart = slotMapping + c.tokens;
  const seqLens = queryStart + c.seqs + 1;
  const decodeSeqs = seqLens + c.seqs;
  const tileSeq = decodeSeqs + c.seqs;
  const tileQ0 = tileSeq + c.tiles;
  const blockTables = tileQ0 + c.tiles;
  return {
    tokenIds,
    positions,
    slotMapping,
    queryStart,
    seqLens,
    blockTables,
    blockTableStride: c.blocksPerSeq,
    decodeSeqs,
    tileSeq,
    tileQ0,
    capacity: blockTables + c.seqs * c.blocksPerSeq,
  };
}

/** The 11 ints native setMetaLayout takes. */
export function layoutInts(l: MetaLayout): Int32Array {
  return Int32Array.from([
    l.tokenIds,
    l.positions,
    l.slotMapping,
    l.queryStart,
    l.seqLens,
    l.blockTables,
    l.blockTableStride,
    l.decodeSeqs,
    l.tileSeq,
    l.tileQ0,
    l.capacity,
  ]);
}

/** Prefill tiles the step needs: Σ ceil(qLen / 16) over sequences with more than one query token. */
export function tilesNeeded(meta: StepMeta): number {
  let n = 0;
  for (let s = 0; s < meta.numSeqs; s++) {
    const q = meta.queryStart[s + 1] - meta.queryStart[s];
    if (q > 1) n += Math.ceil(q / PREFILL_TILE);
  }
  return n;
}

/** What one packed step holds (besides the buffer). */
export interface PackedStep {
  /** Ints to upload (a prefix of the buffer). */
  ints: number;
  numTokens: number;
  numSeqs: number;
  numDecode: number;
  numTiles: number;
  /** Longest sequence among the decode sequences (0 when none). */
  maxDecodeLen: number;
  /** True when the layout changed since the previous pack (send it to the device first). */
  layoutChanged: boolean;
}

const grow = (need: number, old: number, min: number) => (need <= old ? old : Math.max(need, 2 * old, min));

/**
 * Packs steps into a reused buffer. Capacities only grow (doubling), so a steady workload settles on one
 * layout; a step with a different maxBlocksPerSeq changes the row stride (a new layout).
 */
export class StepPacker {
  #cap: MetaCapacity = { tokens: 0, seqs: 0, blocksPerSeq: 0, tiles: 0 };
  #layout: MetaLayout = metaLayout(this.#cap);
  #buf = new Int32Array(0);
  #epoch = 0;

  /** The current layout. */
  get layout(): MetaLayout {
    return this.#layout;
  }
  /** Increments whenever the layout changes. */
  get epoch(): number {
    return this.#epoch;
  }
  /** The packed ints (valid up to the last pack's `ints`). */
  get buffer(): Int32Array {
    return this.#buf;
  }

  /** Ensures room for a step of these sizes; true when the layout changed. */
  reserve(tokens: number, seqs: number, blocksPerSeq: number, tiles: number): boolean {
    const c = this.#cap;
    const next: MetaCapacity = {
      tokens: grow(tokens, c.tokens, 64),
      seqs: grow(seqs, c.seqs, 16),
      blocksPerSeq,
      tiles: grow(tiles, c.tiles, 16),
    };
    if (
      next.tokens === c.tokens &&
      next.seqs === c.seqs &&
      next.blocksPerSeq === c.blocksPerSeq &&
      next.tiles === c.tiles
    ) {
      return false;
    }
    this.#cap = next;
    this.#layout = metaLayout(next);
    if (this.#buf.length < this.#layout.capacity) this.#buf = new Int32Array(this.#layout.capacity);
    this.#epoch++;
    return true;
  }

  /** Packs `meta` (validated by the caller) and returns what the device needs to know about it. */
  pack(meta: StepMeta): PackedStep {
    const T = meta.numTokens;
    const S = meta.numSeqs;
    const stride = Math.max(1, meta.maxBlocksPerSeq);
    const layoutChanged = this.reserve(T, S, stride, tilesNeeded(meta));
    const L = this.#layout;
    const b = this.#buf;
    b.set(meta.tokenIds.subarray(0, T), L.tokenIds);
    b.set(meta.positions.subarray(0, T), L.positions);
    b.set(meta.slotMapping.subarray(0, T), L.slotMapping);
    b.set(meta.queryStart.subarray(0, S + 1), L.queryStart);
    b.set(meta.seqLens.subarray(0, S), L.seqLens);
    let numDecode = 0;
    let numTiles = 0;
    let maxDecodeLen = 0;
    for (let s = 0; s < S; s++) {
      const q = meta.queryStart[s + 1] - meta.queryStart[s];
      if (q === 1) {
        b[L.decodeSeqs + numDecode++] = s;
        if (meta.seqLens[s] > maxDecodeLen) maxDecodeLen = meta.seqLens[s];
      } else if (q > 1) {
        for (let q0 = 0; q0 < q; q0 += PREFILL_TILE) {
          b[L.tileSeq + numTiles] = s;
          b[L.tileQ0 + numTiles] = q0;
          numTiles++;
        }
      }
    }
    if (meta.maxBlocksPerSeq > 0) b.set(meta.blockTables.subarray(0, S * meta.maxBlocksPerSeq), L.blockTables);
    return {
      ints: L.blockTables + S * stride,
      numTokens: T,
      numSeqs: S,
      numDecode,
      numTiles,
      maxDecodeLen,
      layoutChanged,
    };
  }
}
