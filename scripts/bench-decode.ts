/** Decode workloads of the CPU benchmarks (bench-cpu.ts, bench-ab.ts): the models and synthetic steps. */
import { fileURLToPath } from "node:url";
import type { Backend, KvDType, StepMeta, StorageDType } from "../src/backends/backend.ts";
import { parseConfig } from "../src/models/config.ts";
import { LlamaGraph } from "../src/models/graph.ts";
import { loadModel } from "../src/models/model.ts";
import { loadWeights } from "../src/models/weights.ts";
import { randomCheckpoint } from "./random-weights.ts";
import { SMOL_360M } from "./smol-model.ts";

const TINY_LLAMA = fileURLToPath(new URL("../models/tiny-llama", import.meta.url));

/** The benchmark models: models/tiny-llama, or "smol360m", SmolLM2-360M's shape with random weights. */
export type BenchModel = "tiny-llama" | "smol360m";

/** The model's forward graph on `backend`, weights stored as `storage`. */
export function benchGraph(
  model: BenchModel,
  backend: Backend,
  storage: StorageDType,
  opts: { maxTokens: number; numBlocks: number; kvDtype: KvDType },
): LlamaGraph {
  const graphOpts = { ...opts, blockSize: BLOCK };
  if (model === "tiny-llama") return loadModel(TINY_LLAMA, backend, { ...graphOpts, storage }).graph;
  const cfg = parseConfig(SMOL_360M, "smollm2-360m-shape");
  return new LlamaGraph(cfg, loadWeights(cfg, randomCheckpoint(cfg), backend, storage), backend, graphOpts);
}

/** Tokens of context each sequence has before the timed steps, and the KV block size. */
export const CTX = 64;
export const BLOCK = 16;

/** Decode step metadata: n sequences, each with its own blocks, at position CTX + step. */
/** One sequence's prefill of `tokens` tokens from position 0 (its blocks 0, 1, …). */
export function prefillMeta(tokens: number, vocab: number): StepMeta {
  const blocks = Math.ceil(tokens / BLOCK);
  return {
    numTokens: tokens,
    tokenIds: Int32Array.from({ length: tokens }, (_, i) => (i * 7919 + 13) % vocab),
    positions: Int32Array.from({ length: tokens }, (_, i) => i),
    slotMapping: Int32Array.from({ length: tokens }, (_, i) => i),
    numSeqs: 1,
    queryStart: Int32Array.of(0, tokens),
    seqLens: Int32Array.of(tokens),
    blockTables: Int32Array.from({ length: blocks }, (_, i) => i),
    maxBlocksPerSeq: blocks,
  };
}

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
