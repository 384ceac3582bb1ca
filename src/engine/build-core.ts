/**
 * Builds an EngineCore from EngineOptions: picks the backend, sizes the KV pool from the memory budget
 * (never from max_model_len × batch), loads the model. Runs on the engine thread; tests call it directly.
 */
import { basename, resolve } from "node:path";
import type { KvDType } from "../backends/backend.ts";
import { selectBackend } from "../backends/select.ts";
import { loadConfig } from "../models/config.ts";
import { kvBytesPerToken, loadModel } from "../models/model.ts";
import { EngineCore } from "./engine-core.ts";
import type { EngineOptions } from "./options.ts";
import type { EngineInfo } from "./types.ts";

export interface BuiltCore {
  core: EngineCore;
  info: EngineInfo;
  warning: string | null;
}

export async function buildCore(opts: EngineOptions): Promise<BuiltCore> {
  const cfg = loadConfig(opts.model);
  const { backend, warning } = await selectBackend(opts.backend, opts.threads);
  const maxModelLen = opts.maxModelLen > 0 ? opts.maxModelLen : cfg.maxPositionEmbeddings;
  const kvDtype: KvDType = opts.kvCacheDtype === "int8" ? "int8" : "f32";
  // int8 entries carry one f32 scale per (token, head): ~1 byte + 4/headDim per element.
  const bytesPerElement = kvDtype === "int8" ? 1 + 4 / cfg.headDim : 4;
  const blockBytes = kvBytesPerToken(cfg, bytesPerElement) * opts.blockSize;
  const numBlocks = Math.floor(opts.kvCacheMemory / blockBytes);
  if (numBlocks < 2) {
    throw new Error(
      `--kv-cache-memory ${opts.kvCacheMemory} bytes holds ${numBlocks} KV blocks of ${blockBytes} bytes; give it more`,
    );
  }
  // A step must hold at least one whole prompt chunk per sequence; the naive policy prefills whole prompts.
  const maxNumBatchedTokens =
    opts.scheduler === "naive" ? Math.max(opts.maxNumBatchedTokens, maxModelLen) : opts.maxNumBatchedTokens;
  const storage = opts.quantization === "none" ? (backend.name === "reference" ? "f32" : "bf16") : opts.quantization;
  const model = loadModel(opts.model, backend, {
    maxTokens: maxNumBatchedTokens,
    numBlocks,
    blockSize: opts.blockSize,
    storage,
    kvDtype,
  });
  const core = new EngineCore(model, {
    maxNumSeqs: opts.maxNumSeqs,
    maxNumBatchedTokens,
    maxModelLen,
    blockSize: opts.blockSize,
    numBlocks,
    enablePrefixCaching: opts.enablePrefixCaching && opts.scheduler !== "naive",
    policy: opts.scheduler,
  });
  const info: EngineInfo = {
    modelName: opts.servedModelName ?? basename(resolve(opts.model)),
    modelDir: resolve(opts.model),
    backend: backend.describe(),
    dtype: storage,
    maxModelLen,
    blockSize: opts.blockSize,
    numBlocks,
    kvCapacityTokens: numBlocks * opts.blockSize,
    vocabSize: cfg.vocabSize,
    scheduler: opts.scheduler,
  };
  return { core, info, warning };
}
