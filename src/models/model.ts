/** Loading a model folder or a GGUF file into a ready-to-run graph on a backend. */
import { basename, resolve } from "node:path";
import type { Backend, KvDType, StorageDType } from "../backends/backend.ts";
import { GgufTensorSource } from "../formats/gguf/model-source.ts";
import { GgufFile, isGgufFile } from "../formats/gguf/reader.ts";
import { openSafetensors } from "../formats/safetensors.ts";
import { configFromGguf, loadConfig, type ModelConfig } from "./config.ts";
import { LlamaGraph } from "./graph.ts";
import { loadWeights } from "./weights.ts";

export interface LoadModelOptions {
  maxTokens: number;
  numBlocks: number;
  blockSize: number;
  /**
   * Weight matrix storage. Default: f32 for a model folder; for a GGUF file each matrix keeps its file's
   * format (F16 → f16, BF16 → bf16, Q8_0 → int8, Q4_0 → int4, Q4_K/Q6_K → f16 after dequantizing).
   */
  storage?: StorageDType;
  kvDtype?: KvDType;
  /** One-line notes while loading (default: stderr). */
  log?: (line: string) => void;
}

export interface LoadedModel {
  dir: string;
  name: string;
  config: ModelConfig;
  graph: LlamaGraph;
}

/**
 * Reads config and weights of `dir` (a model folder, or a `.gguf` file) and builds the graph (weights are
 * copied into the backend).
 */
export function loadModel(dir: string, backend: Backend, opts: LoadModelOptions): LoadedModel {
  if (isGgufFile(dir)) return loadGgufModel(dir, backend, opts);
  const config = loadConfig(dir);
  const st = openSafetensors(dir);
  try {
    const weights = loadWeights(config, st, backend, opts.storage ?? "f32");
    const graph = new LlamaGraph(config, weights, backend, opts);
    return { dir: resolve(dir), name: basename(resolve(dir)), config, graph };
  } finally {
    st.close();
  }
}

function loadGgufModel(path: string, backend: Backend, opts: LoadModelOptions): LoadedModel {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const file = GgufFile.open(path);
  try {
    const config = configFromGguf(file);
    const src = new GgufTensorSource(file, config.numHeads, config.numKvHeads, log);
    const weights = loadWeights(config, src, backend, opts.storage, log);
    const graph = new LlamaGraph(config, weights, backend, opts);
    return { dir: file.path, name: basename(file.path).replace(/\.gguf$/i, ""), config, graph };
  } finally {
    file.close();
  }
}

/** Bytes of KV cache per token for this model (K and V, every layer). */
export function kvBytesPerToken(cfg: ModelConfig, bytesPerElement = 4): number {
  return 2 * cfg.numLayers * cfg.numKvHeads * cfg.headDim * bytesPerElement;
}
