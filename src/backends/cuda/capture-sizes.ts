/**
 * Batch sizes for which decode steps are captured as CUDA graphs, and the padding of a batch to one of
 * them (vLLM's cudagraph_capture_sizes idea: a graph replays only at the exact shape it was captured at,
 * so a batch of 5 runs the graph of 8 with 3 dummy sequences).
 */

/** 1, 2, 4, then every multiple of 8 up to 256 (the shapes vLLM captures by default, up to 256). */
export const DEFAULT_CAPTURE_SIZES: readonly number[] = [1, 2, 4, ...Array.from({ length: 32 }, (_, i) => 8 * (i + 1))];

/** The sizes of `sizes` that are ≤ maxBatch, ascending and distinct. */
export function captureSizes(maxBatch: number, sizes: readonly number[] = DEFAULT_CAPTURE_SIZES): number[] {
  return [...new Set(sizes.filter((s) => Number.isInteger(s) && s >= 1 && s <= maxBatch))].sort((a, b) => a - b);
}

/** The smallest capture size ≥ n, or null when n is 0 or above every size (run eagerly). */
export function paddedBatch(n: number, sizes: readonly number[]): number | null {
  if (n < 1) return null;
  for (const s of sizes) if (s >= n) return s;
  return null;
}
