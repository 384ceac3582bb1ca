/**
 * Builds an EngineCore from EngineOptions: picks the backend, sizes the KV pool from the memory budget
 * (never from max_model_len × batch), loads the model. Runs on the engine thread; tests call it directly.
 */
import { basename, resolve } from "node:path";
import type { CudaBackend } from "../backends/cuda/cuda-backend.ts";
import { selectBackend } from "../backends/select.ts";
import { loadConfig } from "../models/config.ts";
import { kvBytesPerToken, type LoadedModel, loadModel } from "../models/model.ts";
import { describeSpec, resolveSpecConfig } from "../spec/config.ts";
import { DraftProposer } from "../spec/draft-proposer.ts";
import { NgramProposer } from "../spec/ngram-proposer.ts";
import { SpeculativeDecoder } from "../spec/spec-decoder.ts";
import { planCudaKv, withCudaGraphs } from "./cuda-setup.ts";
import { EngineCore } from "./engine-core.ts";
import { kvBytesPerElement, resolveKvDtype } from "./kv-dtype.ts";
import type { EngineOptions } from "./options.ts";
import type { EngineInfo } from "./types.ts";

export interface BuiltCore {
  core: EngineCore;
  info: EngineInfo;
  warning: string | null;
}

export async function buildCore(opts: EngineOptions): Promise<BuiltCore> {
  const cfg = loadConfig(opts.model);
  const selected = await selectBackend(opts.backend, opts.threads, opts.device);
  const { warning } = selected;
  let backend = selected.backend;
  const maxModelLen = opts.maxModelLen > 0 ? opts.maxModelLen : cfg.maxPositionEmbeddings;
  const kvDtype = resolveKvDtype(opts.kvCacheDtype, backend.name, cfg.dtype);
  const bytesPerElement = kvBytesPerElement(kvDtype, cfg.headDim);
  const spec = resolveSpecConfig(opts);
  // A draft model keeps its own KV pool with the same block ids: each block costs both models' bytes.
  const draftCfg = spec?.draftModel ? loadConfig(spec.draftModel) : null;
  if (draftCfg !== null && draftCfg.vocabSize !== cfg.vocabSize) {
    throw new Error(
      `--speculative-model ${spec!.draftModel}: vocabulary of ${draftCfg.vocabSize} tokens, the model has ${cfg.vocabSize}; ` +
        "a draft model must share the target's tokenizer",
    );
  }
  const draftBytesPerElement = draftCfg !== null ? kvBytesPerElement(kvDtype, draftCfg.headDim) : 0;
  const blockBytes =
    (kvBytesPerToken(cfg, bytesPerElement) + (draftCfg ? kvBytesPerToken(draftCfg, draftBytesPerElement) : 0)) *
    opts.blockSize;
  // A step must hold at least one whole prompt chunk per sequence; the naive policy prefills whole prompts.
  const maxNumBatchedTokens =
    opts.scheduler === "naive" ? Math.max(opts.maxNumBatchedTokens, maxModelLen) : opts.maxNumBatchedTokens;
  // A GGUF keeps its own tensor formats unless the user asks for one; HF checkpoints run as bf16 on native
  // backends and f32 on the reference backend.
  const isGguf = opts.model.endsWith(".gguf");
  const storage =
    opts.quantization !== "none"
      ? opts.quantization
      : isGguf
        ? undefined
        : backend.name === "reference"
          ? "f32"
          : "bf16";
  let numBlocks = Math.floor(opts.kvCacheMemory / blockBytes);
  let budgetHint = `--kv-cache-memory ${opts.kvCacheMemory} bytes`;
  if (backend.name === "cuda") {
    const cuda = backend as CudaBackend;
    const plan = planCudaKv(cuda, {
      model: cfg,
      draft: draftCfg,
      storage: storage ?? "bf16",
      kvDtype,
      blockSize: opts.blockSize,
      maxNumBatchedTokens,
      maxNumSeqs: opts.maxNumSeqs,
      utilization: opts.gpuMemoryUtilization,
    });
    numBlocks = plan.numBlocks;
    budgetHint = `${plan.explain} (--gpu-memory-utilization ${opts.gpuMemoryUtilization})`;
    backend = withCudaGraphs(cuda, maxModelLen, Math.min(opts.maxNumSeqs, maxNumBatchedTokens));
  }
  if (numBlocks < 2) {
    throw new Error(`${budgetHint} holds ${numBlocks} KV blocks of ${blockBytes} bytes; give it more`);
  }
  const model = loadModel(opts.model, backend, {
    maxTokens: maxNumBatchedTokens,
    numBlocks,
    blockSize: opts.blockSize,
    storage,
    kvDtype,
  });
  let draft: LoadedModel | null = null;
  let decoder: SpeculativeDecoder | null = null;
  if (spec !== null) {
    const eos = model.config.eosTokenIds;
    let proposer: DraftProposer | NgramProposer;
    if (spec.method === "draft") {
      draft = loadModel(spec.draftModel!, backend, {
        maxTokens: maxNumBatchedTokens,
        numBlocks,
        blockSize: opts.blockSize,
        storage,
        kvDtype,
      });
      const limits = {
        maxTokens: maxNumBatchedTokens,
        maxSeqs: opts.maxNumSeqs,
        maxModelLen,
        blockSize: opts.blockSize,
      };
      proposer = new DraftProposer(draft.graph, limits, eos, draft.name);
    } else {
      proposer = new NgramProposer(spec.ngramMin, spec.ngramMax);
    }
    decoder = new SpeculativeDecoder(spec, proposer, cfg.vocabSize, eos);
  }
  const core = new EngineCore(
    model,
    {
      maxNumSeqs: opts.maxNumSeqs,
      maxNumBatchedTokens,
      maxModelLen,
      blockSize: opts.blockSize,
      numBlocks,
      enablePrefixCaching: opts.enablePrefixCaching && opts.scheduler !== "naive",
      policy: opts.scheduler,
    },
    decoder,
  );
  const info: EngineInfo = {
    modelName: opts.servedModelName ?? basename(resolve(opts.model)),
    modelDir: resolve(opts.model),
    backend: backend.describe(),
    dtype: storage ?? "as stored in the GGUF",
    maxModelLen,
    blockSize: opts.blockSize,
    numBlocks,
    kvCapacityTokens: numBlocks * opts.blockSize,
    kvCacheDtype: kvDtype,
    vocabSize: cfg.vocabSize,
    scheduler: opts.scheduler,
  };
  if (spec !== null) info.speculative = describeSpec(spec, draft?.name);
  return { core, info, warning };
}
