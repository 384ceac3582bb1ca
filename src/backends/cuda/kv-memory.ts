/**
 * Sizing the paged KV pool from device memory, as vLLM's --gpu-memory-utilization does:
 *
 *   budget = free device memory (measured before the model loads) × utilization
 *            − weight bytes − activation bytes − reserve
 *   blocks = floor(budget / bytes per block)
 *
 * Pure arithmetic; the engine measures `freeBytes` with CudaBackend.freeMemoryBytes() before loading
 * weights. Bytes per block must match what the backend allocates (native/cuda/context.cc newKv).
 */
import { storageBytes } from "../../formats/quant.ts";
import type { ModelConfig } from "../../models/config.ts";
import { KV_ELEMENT_BYTES, type KvDType, type StorageDType } from "../backend.ts";

export const DEFAULT_GPU_MEMORY_UTILIZATION = 0.9;
/** cuBLAS workspace + CUDA graph pools + allocator slack the estimate does not see. */
export const DEFAULT_RESERVE_BYTES = 256 * 1024 * 1024;

/** Device bytes of one KV block across all layers (K and V; int8 adds one f32 scale per vector). */
export function kvBytesPerBlock(
  numLayers: number,
  numKvHeads: number,
  headDim: number,
  blockSize: number,
  dtype: KvDType,
): number {
  const vecs = blockSize * numKvHeads;
  const perPool = vecs * headDim * KV_ELEMENT_BYTES[dtype] + (dtype === "int8" ? vecs * 4 : 0);
  return 2 * perPool * numLayers;
}

/** What estimateWeightBytes needs of a ModelConfig. */
export type WeightShape = Pick<
  ModelConfig,
  | "vocabSize"
  | "hiddenSize"
  | "intermediateSize"
  | "numLayers"
  | "numHeads"
  | "numKvHeads"
  | "headDim"
  | "tieWordEmbeddings"
>;

/**
 * Device bytes of a llama-family model's weights stored as `storage` (the CUDA layouts are quant.ts's
 * storageBytes: rows padded to 32 columns), before loading it: fused qkv, o, fused gate/up and down per
 * layer, the embedding (and an untied lm_head), plus f32 norms and biases (a slight overestimate).
 */
export function estimateWeightBytes(c: WeightShape, storage: StorageDType): number {
  const q = c.numHeads * c.headDim;
  const qkv = q + 2 * c.numKvHeads * c.headDim;
  const perLayer =
    storageBytes(storage, qkv, c.hiddenSize) +
    storageBytes(storage, c.hiddenSize, q) +
    storageBytes(storage, 2 * c.intermediateSize, c.hiddenSize) +
    storageBytes(storage, c.hiddenSize, c.intermediateSize) +
    4 * (4 * c.hiddenSize + qkv + 2 * c.headDim);
  const embed = storageBytes(storage, c.vocabSize, c.hiddenSize);
  return c.numLayers * perLayer + embed * (c.tieWordEmbeddings ? 1 : 2) + 4 * c.hiddenSize;
}

export type ActivationShape = Pick<
  ModelConfig,
  "hiddenSize" | "numHeads" | "numKvHeads" | "headDim" | "intermediateSize" | "vocabSize"
> & {
  /** Most tokens in one step (max_num_batched_tokens). */
  maxTokens: number;
  /** Most sequences in one step (max_num_seqs): logit rows. */
  maxSeqs: number;
};

/**
 * Activation memory of the llama graph (src/models/graph.ts buffers, f32) plus the backend's scratch
 * (bf16 GEMM input, split-K partials for up to 64 splits).
 */
export function estimateActivationBytes(s: ActivationShape): number {
  const T = s.maxTokens;
  const q = s.numHeads * s.headDim;
  const qkv = q + 2 * s.numKvHeads * s.headDim;
  const graph = T * (3 * s.hiddenSize + qkv + q + 3 * s.intermediateSize) + s.maxSeqs * (s.hiddenSize + s.vocabSize);
  const maxK = Math.max(s.hiddenSize, s.intermediateSize, q);
  const gemmScratch = (T * maxK * 2) / 4;
  const splitK = s.maxSeqs * s.numHeads * 64 * (s.headDim + 2);
  return 4 * (graph + gemmScratch + splitK);
}

export interface KvMemoryInput {
  /** Free device memory before the model was loaded (cudaMemGetInfo). */
  freeBytes: number;
  /** Fraction of it the engine may use, in (0, 1]. */
  utilization: number;
  weightBytes: number;
  activationBytes: number;
  bytesPerBlock: number;
  reserveBytes?: number;
}

export interface KvMemoryPlan {
  numBlocks: number;
  budgetBytes: number;
  /** One line for logs and errors. */
  explain: string;
}

export function planKvMemory(i: KvMemoryInput): KvMemoryPlan {
  if (!(i.utilization > 0 && i.utilization <= 1)) {
    throw new RangeError(`--gpu-memory-utilization must be in (0, 1], got ${i.utilization}`);
  }
  if (!(i.bytesPerBlock > 0)) throw new RangeError(`bytes per KV block must be positive, got ${i.bytesPerBlock}`);
  const reserve = i.reserveBytes ?? DEFAULT_RESERVE_BYTES;
  const budget = Math.floor(i.freeBytes * i.utilization - i.weightBytes - i.activationBytes - reserve);
  const numBlocks = Math.max(0, Math.floor(budget / i.bytesPerBlock));
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  const explain =
    `KV cache: ${gib(i.freeBytes)} free × ${i.utilization} − weights ${gib(i.weightBytes)} − activations ` +
    `${gib(i.activationBytes)} − reserve ${gib(reserve)} = ${gib(Math.max(0, budget))} → ${numBlocks} blocks of ` +
    `${i.bytesPerBlock} bytes`;
  return { numBlocks, budgetBytes: Math.max(0, budget), explain };
}
