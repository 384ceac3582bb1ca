/**
 * The KV cache's element type, from `--kv-cache-dtype`. "auto" follows the checkpoint, as vLLM's does: a
 * bf16 or f16 model keeps its keys and values in that dtype on the native backends (half the memory of
 * f32, so twice the tokens in the same budget, and what the benchmarks measure); an f32 checkpoint, and
 * every model on the reference backend (the correctness oracle), keeps f32.
 */
import type { KvDType } from "../backends/backend.ts";

export const KV_CACHE_DTYPES = ["auto", "bf16", "f16", "f32", "int8"] as const;
export type KvCacheDtypeOption = (typeof KV_CACHE_DTYPES)[number];

/** `checkpointDtype`: the config's torch_dtype ("bfloat16", "float16", "float32", or a GGUF file type). */
export function resolveKvDtype(option: KvCacheDtypeOption, backendName: string, checkpointDtype: string): KvDType {
  if (option !== "auto") return option;
  if (backendName === "reference") return "f32";
  if (checkpointDtype === "float32") return "f32";
  if (checkpointDtype === "float16") return "f16";
  return "bf16";
}

/** Bytes one cached element costs: int8 entries carry one f32 scale per (token, head). */
export function kvBytesPerElement(dtype: KvDType, headDim: number): number {
  if (dtype === "int8") return 1 + 4 / headDim;
  return dtype === "f32" ? 4 : 2;
}
