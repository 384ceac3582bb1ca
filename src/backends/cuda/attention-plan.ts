/**
 * Work split of the split-K ("FlashDecoding") decode attention kernel: how many partitions of how many
 * tokens each sequence's context is cut into. Pure arithmetic, mirrored by native/cuda/attention_decode.cu:
 *
 *   grid = splits × (numKvHeads × ceil(group / 8)) × numDecode blocks of 128 threads
 *   shared memory = (gb·hd + gb·partition + 2·gb + 4·gb·hd) floats, gb = min(group, 8), plus the
 *                   partition's block-table entries (partition / blockSize + 2 ints; the kernel's limit is
 *                   raised to the device's opt-in maximum, so these few bytes may pass 48 KiB)
 *
 * Rules: a partition's floats fit in 48 KiB of shared memory (and it holds ≤ 1024 tokens); short
 * contexts in a batch that fills the GPU use one split (no merge); otherwise the context is split until the
 * grid has about two blocks per SM, into partitions of at least 32 tokens (decode attention at small batch
 * is a chain of memory round trips per block: more, shorter blocks run them side by side; the last block
 * of each sequence and KV head merges the partitions). In graph mode the plan is made for the longest
 * context the graph may see, so one captured launch serves every step (partitions past a sequence's length
 * exit at once).
 */

/** Head capacity of one decode block (native DECODE_HEADS_PER_BLOCK). */
export const DECODE_HEADS_PER_BLOCK = 8;
const DECODE_WARPS = 4;
const SMEM_FLOATS = (48 * 1024) / 4;
const MAX_PARTITION = 1024;
const MIN_PARTITION = 32;

export interface DecodePlanInput {
  numDecode: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Longest context (tokens) any decode sequence has this step (or may have, in graph mode). */
  maxSeqLen: number;
  /** Streaming multiprocessors of the device. */
  smCount: number;
}

export interface DecodePlan {
  splits: number;
  partition: number;
}

/** The largest partition whose scores fit in shared memory next to q and the cross-warp buffer. */
export function maxPartition(numHeads: number, numKvHeads: number, headDim: number): number {
  const gb = Math.min(numHeads / numKvHeads, DECODE_HEADS_PER_BLOCK);
  const free = SMEM_FLOATS - gb * headDim * (1 + DECODE_WARPS) - 2 * gb;
  const p = Math.floor(free / gb / MIN_PARTITION) * MIN_PARTITION;
  return Math.max(MIN_PARTITION, Math.min(MAX_PARTITION, p));
}

export function planDecode(i: DecodePlanInput): DecodePlan {
  const len = Math.max(1, i.maxSeqLen);
  const pmax = maxPartition(i.numHeads, i.numKvHeads, i.headDim);
  const group = i.numHeads / i.numKvHeads;
  const blocksPerSplit = Math.max(1, i.numDecode * i.numKvHeads * Math.ceil(group / DECODE_HEADS_PER_BLOCK));
  if (len <= pmax && blocksPerSplit >= 2 * i.smCount) return { splits: 1, partition: roundUp(len) };
  const wantSplits = Math.max(1, Math.ceil((2 * i.smCount) / blocksPerSplit));
  const partition = Math.min(pmax, roundUp(Math.ceil(len / wantSplits)));
  return { splits: Math.ceil(len / partition), partition };
}

function roundUp(n: number): number {
  return Math.ceil(n / MIN_PARTITION) * MIN_PARTITION;
}
