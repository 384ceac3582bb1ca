/**
 * The KV cache's element type, from `--kv-cache-dtype`. "auto" follows the checkpoint, as vLLM's does: a
 * bf16 or f16 model keeps its keys and values in that dtype on the native backends (half the memory of
 * f32, so twice the tokens in the same budget, and what the benchmarks measure); an f32 checkpoint, and
 * every model on the reference backend (the correctness oracle), keeps f32.
 */
import { KV_ELEMENT_BYTES, type KvDType } from "../backends/backend.ts";

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

/** Bytes one cached element costs, its share of an int8 vector's f32 scale included. */
export function kvBytesPerElement(dtype: KvDType, headDim: number): number {
  return KV_ELEMENT_BYTES[dtype] + (dtype === "int8" ? 4 / headDim : 0);
}
