/**
 * Loading the CUDA addon (build/cuda/loom_cuda.node, built by scripts/build-cuda.mjs) and the surface it
 * exports (native/cuda/addon.cc). Objects are integer ids; enums are numbered as in native/cuda/common.h.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { NativeHandleOps } from "../native-addon.ts";

export const SRC_DTYPE = { f32: 0, f16: 1, bf16: 2 } as const;
export const STORAGE = { f32: 0, f16: 1, bf16: 2, int8: 3, int4: 4 } as const;
export const KV_DTYPE = { f32: 0, bf16: 1, f16: 2, int8: 3 } as const;
export const ACT = { silu: 0, gelu_tanh: 1 } as const;
export const KIND = { buffer: 0, weight: 1, kv: 2, constant: 3 } as const;
/** cublasMode of the NativeCuda constructor. */
export const CUBLAS_MODE = { required: 0, optional: 1, off: 2 } as const;

export interface PackedWeight {
  data: Uint8Array;
  scales: Float32Array;
  kp: number;
}

export interface DeviceInfo {
  name: string;
  major: number;
  minor: number;
  smCount: number;
  totalBytes: number;
  sharedPerBlockOptin: number;
  l2Bytes: number;
}

/** One device context (native/cuda/addon.cc NativeCuda). */
export interface NativeCuda extends NativeHandleOps {
  deviceInfo(): DeviceInfo;
  memInfo(): Float64Array;
  hasCublas(): boolean;
  constant(data: Float32Array): number;
  setMetaLayout(layout: Int32Array): void;
  beginStep(
    packed: Int32Array,
    ints: number,
    numTokens: number,
    numSeqs: number,
    numDecode: number,
    numTiles: number,
  ): void;
  rope(
    x: number,
    rows: number,
    rowStride: number,
    offset: number,
    numHeads: number,
    headDim: number,
    rotaryDim: number,
    invFreq: number,
    attentionFactor: number,
  ): void;
  attention(
    out: number,
    qkv: number,
    rowStride: number,
    kv: number,
    numHeads: number,
    numKvHeads: number,
    headDim: number,
    scale: number,
    window: number,
    softcap: number,
    splits: number,
    partition: number,
  ): void;
  copyBlocks(kvIds: Int32Array, src: Int32Array, dst: Int32Array): void;
  sampleGreedy(
    logits: number,
    rows: number,
    vocab: number,
    softcap: number,
    outIds: Int32Array,
    outLogprobs: Float32Array | null,
  ): void;
  sample(
    logits: number,
    rows: number,
    vocab: number,
    softcap: number,
    params: Float32Array,
    topK: Int32Array,
    outIds: Int32Array,
    outLogprobs: Float32Array | null,
  ): void;
  setGraphMode(on: boolean): void;
  beginCapture(): void;
  endCapture(key: number): void;
  abortCapture(): void;
  replay(key: number): void;
  hasGraph(key: number): boolean;
  dropGraphs(): void;
  graphCount(): number;
  synchronize(): void;
}

export interface NativeCudaModule {
  NativeCuda: new (device: number, cublasMode: number, tensorCoreMinRows: number) => NativeCuda;
  /** "" when the device is usable; otherwise why not (no driver, no device, …). Needs no GPU. */
  deviceUnavailableReason(device: number): string;
  cublasStatus(): { ok: boolean; path: string; error: string };
  /** Host-side weight packing (the device layout), for tests on machines without a GPU. */
  packWeight(data: Uint8Array, srcDtype: number, rows: number, cols: number, storage: number): PackedWeight;
  packQuantized(
    kind: number,
    rows: number,
    cols: number,
    q: Int8Array | Uint8Array,
    scales: Float32Array,
  ): PackedWeight;
  buildInfo(): { cudaRuntime: number; archs: string };
}

/** Where the addon is looked for: $LOOM_CUDA_ADDON, then build/cuda under the repo, then under the cwd. */
export function addonCandidates(): string[] {
  const repo = fileURLToPath(new URL("../../../build/cuda/loom_cuda.node", import.meta.url));
  const env = process.env.LOOM_CUDA_ADDON;
  const list = [env ? resolve(env) : undefined, repo, join(process.cwd(), "build", "cuda", "loom_cuda.node")];
  return [...new Set(list.filter((p): p is string => !!p))];
}

let loaded: NativeCudaModule | { error: string } | null = null;

const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split("\n")[0];

/** Loads the addon once; a one-line error when it is not built or cannot load. Never throws. */
export function loadCudaAddon(): NativeCudaModule | { error: string } {
  if (loaded) return loaded;
  const path = addonCandidates().find((p) => existsSync(p));
  if (!path) {
    loaded = {
      error:
        "CUDA addon not built (build/cuda/loom_cuda.node missing; run `node scripts/build-cuda.mjs`, which needs nvcc)",
    };
    return loaded;
  }
  try {
    loaded = createRequire(import.meta.url)(path) as NativeCudaModule;
  } catch (e) {
    loaded = { error: `CUDA addon ${path} failed to load: ${firstLine(e)}` };
  }
  return loaded;
}
