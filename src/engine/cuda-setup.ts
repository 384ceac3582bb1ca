/**
 * The CUDA backend's part of building an engine: the KV pool sized from device memory, as vLLM's
 * --gpu-memory-utilization does (free memory before loading × utilization − weights − activations −
 * reserve), and the decode steps wrapped in CUDA graphs.
 */
import type { Backend, KvDType, StorageDType } from "../backends/backend.ts";
import type { CudaBackend } from "../backends/cuda/cuda-backend.ts";
import { CudaGraphBackend } from "../backends/cuda/graph-backend.ts";
import {
  estimateActivationBytes,
  estimateWeightBytes,
  type KvMemoryPlan,
  kvBytesPerBlock,
  planKvMemory,
} from "../backends/cuda/kv-memory.ts";
import type { ModelConfig } from "../models/config.ts";

export interface CudaPlanInput {
  model: ModelConfig;
  /** The speculative draft model, whose weights and KV pool share the device. */
  draft: ModelConfig | null;
  storage: StorageDType;
  kvDtype: KvDType;
  blockSize: number;
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
  utilization: number;
}

/** KV blocks that fit on the device next to the weights (both models' bytes per block with a draft). */
export function planCudaKv(backend: CudaBackend, i: CudaPlanInput): KvMemoryPlan {
  const models = i.draft ? [i.model, i.draft] : [i.model];
  const sum = (f: (c: ModelConfig) => number) => models.reduce((s, c) => s + f(c), 0);
  return planKvMemory({
    freeBytes: backend.freeMemoryBytes(),
    utilization: i.utilization,
    weightBytes: sum((c) => estimateWeightBytes(c, i.storage)),
    activationBytes: sum((c) =>
      estimateActivationBytes({ ...c, maxTokens: i.maxNumBatchedTokens, maxSeqs: i.maxNumSeqs }),
    ),
    bytesPerBlock: sum((c) => kvBytesPerBlock(c.numLayers, c.numKvHeads, c.headDim, i.blockSize, i.kvDtype)),
  });
}

/** Decode steps captured once per padded batch size and replayed (see graph-backend.ts). */
export function withCudaGraphs(backend: CudaBackend, maxModelLen: number, maxBatch: number): Backend {
  return new CudaGraphBackend(backend, { maxModelLen, maxBatch });
}
