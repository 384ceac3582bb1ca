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

/** `seqs` sequences of `seqLen` tokens, each in blocks of its own, with their last `qLen` tokens in the step. */
export function chunkMeta(seqs: number, qLen: number, seqLen: number, vocab: number): StepMeta {
  const bps = Math.ceil(seqLen / BLOCK);
  const n = seqs * qLen;
  const positions = Int32Array.from({ length: n }, (_, i) => seqLen - qLen + (i % qLen));
  return {
    numTokens: n,
    tokenIds: Int32Array.from({ length: n }, (_, i) => (i * 7919 + 13) % vocab),
    positions,
    slotMapping: Int32Array.from({ length: n }, (_, i) => Math.floor(i / qLen) * bps * BLOCK + positions[i]),
    numSeqs: seqs,
    queryStart: Int32Array.from({ length: seqs + 1 }, (_, s) => s * qLen),
    seqLens: new Int32Array(seqs).fill(seqLen),
    blockTables: Int32Array.from({ length: seqs * bps }, (_, i) => i),
    maxBlocksPerSeq: bps,
  };
}

/** One prompt of `tokens` tokens, all in the step. */
export const prefillMeta = (tokens: number, vocab: number): StepMeta => chunkMeta(1, tokens, tokens, vocab);

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
