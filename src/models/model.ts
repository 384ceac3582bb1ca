/** Loading a model folder into a ready-to-run graph on a backend. */
import { basename, resolve } from "node:path";
import type { Backend, KvDType, StorageDType } from "../backends/backend.ts";
import { openSafetensors } from "../formats/safetensors.ts";
import { loadConfig, type ModelConfig } from "./config.ts";
import { LlamaGraph } from "./graph.ts";
import { loadWeights } from "./weights.ts";

export interface LoadModelOptions {
  maxTokens: number;
  numBlocks: number;
  blockSize: number;
  storage?: StorageDType;
  kvDtype?: KvDType;
}

export interface LoadedModel {
  dir: string;
  name: string;
  config: ModelConfig;
  graph: LlamaGraph;
}

/** Reads config and weights of `dir` and builds the graph (weights are copied into the backend). */
export function loadModel(dir: string, backend: Backend, opts: LoadModelOptions): LoadedModel {
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

/** Bytes of KV cache per token for this model (K and V, every layer). */
export function kvBytesPerToken(cfg: ModelConfig, bytesPerElement = 4): number {
  return 2 * cfg.numLayers * cfg.numKvHeads * cfg.headDim * bytesPerElement;
}
