/**
 * The Backend interface: the small set of ops the llama-family graph (src/models/graph.ts) is built from.
 *
 * One graph, many backends: the graph in TypeScript decides what to compute; a backend (reference TS,
 * native CPU, CUDA) decides how. Every op writes into a caller-provided output buffer, so a forward pass
 * allocates nothing once its buffers exist.
 *
 * Conventions
 * - Activations are row-major f32 buffers (`Buf`) with a fixed capacity in elements; ops take explicit
 *   row counts and widths, never infer them from the buffer size.
 * - A weight matrix `W` has HF layout [outFeatures, inFeatures]; `matmul` computes y = x · Wᵀ (+ bias).
 * - Step metadata (token ids, positions, slot mapping, block tables) is given once per forward pass by
 *   `beginStep`; `embed`, `rope`, `writeKv` and `attention` read it.
 *
 * Paged KV cache layout (per layer, one K pool and one V pool):
 *
 *   pool[block][slotInBlock][kvHead][headDim]    slot = block * blockSize + slotInBlock
 *
 * A sequence's block table row lists its blocks in order; token j of the sequence lives at
 * slot blockTable[j / blockSize] * blockSize + j % blockSize.
 */

export type WeightDType = "f32" | "f16" | "bf16";
/** How a backend stores a weight matrix. int8: symmetric per 32-group; int4: 32-group scale+offset. */
export type StorageDType = WeightDType | "int8" | "int4";
export type KvDType = "f32" | "bf16" | "f16" | "int8";
/** Bytes of one cached K or V element per KV dtype (int8 also keeps one f32 scale per (slot, head) vector). */
export const KV_ELEMENT_BYTES: Readonly<Record<KvDType, number>> = { f32: 4, bf16: 2, f16: 2, int8: 1 };

/** A weight as read from a checkpoint: raw little-endian bytes of `dtype`, row-major. */
export interface HostTensor {
  readonly dtype: WeightDType;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/** An opaque backend-owned buffer. `size` is its capacity in elements. */
export interface Buf {
  readonly size: number;
}

/** An opaque backend-owned weight (matrix or vector). */
export interface Weight {
  readonly shape: readonly number[];
  readonly storage: StorageDType;
}

/** Opaque per-layer paged KV storage (K and V pools). */
export interface KvLayer {
  readonly numBlocks: number;
}

/**
 * Everything a forward pass needs to know about the batch, as flat arrays (built by the model runner).
 *
 *   tokens:      [ seq0 chunk ........ | seq1 chunk | seq2 (decode: 1 token) ]
 *   queryStart:  [0,                    q1,          q2,                      numTokens]
 *   seqLens[s]:  number of KV entries of seq s after this step (cached prefix + its chunk)
 *
 * Token i of sequence s (queryStart[s] <= i < queryStart[s+1]) is at position
 * seqLens[s] - (queryStart[s+1] - i), and attends causally to positions <= its own.
 */
export interface StepMeta {
  numTokens: number;
  tokenIds: Int32Array;
  positions: Int32Array;
  /** KV slot each token's K/V is written to; -1 skips the write. */
  slotMapping: Int32Array;
  numSeqs: number;
  queryStart: Int32Array;
  seqLens: Int32Array;
  /** [numSeqs, maxBlocksPerSeq] row-major; unused entries are ignored. */
  blockTables: Int32Array;
  maxBlocksPerSeq: number;
}

export interface AttentionParams {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  scale: number;
  /** Tokens a query may see including itself (HF `sliding_window`); 0 = unlimited. */
  slidingWindow: number;
  /** tanh soft-capping of attention scores; 0 = off. */
  softcap: number;
}

export interface RopeParams {
  numHeads: number;
  headDim: number;
  /** Leading dims of each head that rotate (partial rotary); the rest pass through. */
  rotaryDim: number;
  /** rotaryDim/2 inverse frequencies (already scaled by the rope type). */
  invFreq: Float32Array;
  /** Multiplies cos and sin (YaRN's attention factor); 1 for most models. */
  attentionFactor: number;
}

export type Activation = "silu" | "gelu_tanh";

export interface Backend {
  readonly name: string;
  /** Human-readable description (threads, SIMD level, device). */
  describe(): string;

  /** Take a weight. `storage` may request quantization; vectors (norms, biases) are always kept as f32. */
  weight(t: HostTensor, storage?: StorageDType): Weight;
  /** An f32 activation buffer of `size` elements. */
  buffer(size: number): Buf;
  /** Copy `data` into the first data.length elements of `buf`. */
  write(buf: Buf, data: Float32Array): void;
  /** Copy the first out.length elements of `buf` into `out`. */
  read(buf: Buf, out: Float32Array): void;
  /** Paged KV storage for one layer. */
  kvLayer(numBlocks: number, blockSize: number, numKvHeads: number, headDim: number, dtype: KvDType): KvLayer;
  /** Release everything this backend allocated. */
  dispose(): void;

  beginStep(meta: StepMeta): void;

  /** out[i] = table[tokenIds[i]] * scale, for the step's tokens. */
  embed(out: Buf, table: Weight, scale: number): void;
  /** out[r] = rmsnorm(x[r]) * (w or 1 + w) over `dim`, for `rows` rows. out may alias x. */
  rmsNorm(out: Buf, x: Buf, w: Weight, rows: number, dim: number, eps: number, plusOne: boolean): void;
  /** residual += x; out = rmsnorm(residual) — the fused residual-add-then-norm of every block. */
  addRmsNorm(
    out: Buf,
    residual: Buf,
    x: Buf,
    w: Weight,
    rows: number,
    dim: number,
    eps: number,
    plusOne: boolean,
  ): void;
  /** out[rows, N] = x[rows, K] · Wᵀ (+ bias[N]). */
  matmul(out: Buf, x: Buf, w: Weight, bias: Weight | null, rows: number): void;
  /** a += b over n elements. */
  add(a: Buf, b: Buf, n: number): void;
  /**
   * In-place rotary embedding (HF rotate-half convention) on the heads of x, which holds `rows` rows of
   * `rowStride` floats; the heads start at `offset` within each row. Positions come from the step.
   */
  rope(x: Buf, rows: number, rowStride: number, offset: number, p: RopeParams): void;
  /** Per-head RMSNorm (Qwen3/Gemma3 q/k norm): `numHeads` heads of `headDim` at `offset` in each row. */
  headNorm(
    x: Buf,
    rows: number,
    rowStride: number,
    offset: number,
    numHeads: number,
    headDim: number,
    w: Weight,
    eps: number,
    plusOne: boolean,
  ): void;
  /** out[r, :inter] = act(gateUp[r, :inter]) * gateUp[r, inter:2*inter]. */
  gatedAct(out: Buf, gateUp: Buf, rows: number, inter: number, act: Activation): void;
  /**
   * Store K and V of the step's tokens into the cache at their slots. qkv rows are
   * [q (numHeads*headDim) | k (numKvHeads*headDim) | v (numKvHeads*headDim)].
   */
  writeKv(kv: KvLayer, qkv: Buf, rowStride: number, kOffset: number, vOffset: number): void;
  /**
   * Paged causal attention for the step's tokens: queries from qkv (at offset 0 of each row of
   * `rowStride`), keys and values from the cache (the step's own K/V must already be written).
   * out is [numTokens, numHeads*headDim].
   */
  attention(out: Buf, qkv: Buf, rowStride: number, kv: KvLayer, p: AttentionParams): void;
  /** out[i] = x[rowIdx[i]] for i < rowIdx.length (rows of `dim` floats). */
  gatherRows(out: Buf, x: Buf, rowIdx: Int32Array, dim: number): void;
  /** Copy KV blocks src[i] → dst[i] in every given layer (copy-on-write). */
  copyBlocks(layers: readonly KvLayer[], src: Int32Array, dst: Int32Array): void;
  /**
   * Optional: out[r] = the index of the largest of the `cols` values of row r of x, r < rows, exactly as
   * sampler.ts argmaxAt (ties to the lowest index; a NaN never wins unless it comes first). Greedy decoding
   * then reads back one id per row instead of the logits.
   */
  argmaxRows?(x: Buf, rows: number, cols: number, out: Int32Array): void;
}
