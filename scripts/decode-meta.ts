/** Synthetic decode steps for the CPU benchmarks (bench-cpu.ts, bench-ab.ts). */
import type { StepMeta } from "../src/backends/backend.ts";

/** Tokens of context each sequence has before the timed steps, and the KV block size. */
export const CTX = 64;
export const BLOCK = 16;

/** Decode step metadata: n sequences, each with its own blocks, at position CTX + step. */
export function decodeMeta(n: number, step: number, blocksPerSeq: number, vocab: number): StepMeta {
  const pos = CTX + step;
  const tokenIds = Int32Array.from({ length: n }, (_, i) => (i * 7919 + step * 104729) % vocab);
  const positions = new Int32Array(n).fill(pos);
  const blockTables = Int32Array.from({ length: n * blocksPerSeq }, (_, i) => i);
  const slotMapping = Int32Array.from(
    { length: n },
    (_, s) => blockTables[s * blocksPerSeq + Math.floor(pos / BLOCK)] * BLOCK + (pos % BLOCK),
  );
  return {
    numTokens: n,
    tokenIds,
    positions,
    slotMapping,
    numSeqs: n,
    queryStart: Int32Array.from({ length: n + 1 }, (_, i) => i),
    seqLens: new Int32Array(n).fill(pos + 1),
    blockTables,
    maxBlocksPerSeq: blocksPerSeq,
  };
}
