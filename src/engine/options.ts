/**
 * Engine options and their command-line flags (named as vLLM names them), shared by every command that
 * starts an engine (`serve`, `generate`, `chat`, `bench`).
 */
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import type { SchedulerPolicy } from "../scheduler/plan.ts";
import {
  DEFAULT_NGRAM_MAX,
  DEFAULT_NGRAM_MIN,
  DEFAULT_NUM_SPECULATIVE_TOKENS,
  DEFAULT_SPEC_DISABLE_BY_BATCH_SIZE,
  resolveSpecConfig,
  type SpecOptions,
} from "../spec/config.ts";
import { KV_CACHE_DTYPES, type KvCacheDtypeOption } from "./kv-dtype.ts";

/** Speculative decoding fields (SpecOptions) are optional: absent = off. See src/spec/config.ts. */
export interface EngineOptions extends SpecOptions {
  /** Model folder (HF format). */
  model: string;
  /** Name reported by /v1/models (default: folder name). */
  servedModelName?: string;
  /** "auto" = native CPU when the addon loads, else reference. "cuda" only when asked for. */
  backend: "auto" | "cpu" | "reference" | "cuda";
  threads?: number;
  /** CUDA device ordinal (cuda backend). */
  device: number;
  /** cuda: fraction of the free device memory the engine may use; the KV pool gets what is left. */
  gpuMemoryUtilization: number;
  quantization: "none" | "int8" | "int4";
  /** "auto": the checkpoint's bf16/f16 on native backends, f32 on the reference (src/engine/kv-dtype.ts). */
  kvCacheDtype: KvCacheDtypeOption;
  blockSize: number;
  /** KV cache budget in bytes (cpu and reference; cuda sizes its pool from gpuMemoryUtilization). */
  kvCacheMemory: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  /** 0 = the model's max_position_embeddings. */
  maxModelLen: number;
  enablePrefixCaching: boolean;
  scheduler: SchedulerPolicy;
  /** Default max_tokens when a request gives none. */
  defaultMaxTokens: number;
}

/** The bundled default model. */
export const DEFAULT_MODEL = fileURLToPath(new URL("../../models/tiny-llama", import.meta.url));

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  model: DEFAULT_MODEL,
  backend: "auto",
  device: 0,
  gpuMemoryUtilization: 0.9,
  quantization: "none",
  kvCacheDtype: "auto",
  blockSize: 16,
  kvCacheMemory: 256 * 1024 * 1024,
  maxNumSeqs: 64,
  maxNumBatchedTokens: 2048,
  maxModelLen: 0,
  enablePrefixCaching: true,
  scheduler: "continuous",
  defaultMaxTokens: 256,
};

function intArg(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${v}"`);
    return n;
  };
}

/** Parses sizes like 536870912, 512MiB, 2GB, 1.5G. */
export function parseBytes(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$/i.exec(v.trim());
  if (!m) throw new Error(`not a size: "${v}" (use bytes or a suffix like 512MiB, 2GB)`);
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase()] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

/** Adds the engine flags to a command. */
export function addEngineFlags(cmd: Command): Command {
  const d = DEFAULT_ENGINE_OPTIONS;
  return cmd
    .option("--model <dir>", "model folder (Hugging Face format)", d.model)
    .option("--served-model-name <name>", "model name reported by the API (default: folder name)")
    .option("--backend <name>", "auto | cpu | reference | cuda", d.backend)
    .option("--threads <n>", "compute threads for the cpu backend (default: all cores)", intArg("--threads"))
    .option("--device <d>", "cuda, cuda:N or cpu (picks the backend), or a CUDA device ordinal N", String(d.device))
    .option(
      "--gpu-memory-utilization <x>",
      "cuda: fraction of free device memory to use; the KV cache gets what weights and activations leave",
      Number.parseFloat,
      d.gpuMemoryUtilization,
    )
    .option("--quantization <q>", "weight quantization: none | int8 | int4", d.quantization)
    .option(
      "--kv-cache-dtype <t>",
      "auto (the checkpoint's bf16/f16 on cpu and cuda, f32 on reference) | bf16 | f16 | f32 | int8",
      d.kvCacheDtype,
    )
    .option("--block-size <n>", "tokens per KV cache block", intArg("--block-size"), d.blockSize)
    .option(
      "--kv-cache-memory <bytes>",
      "KV cache budget on cpu/reference (bytes, or 512MiB, 2GB…)",
      parseBytes,
      d.kvCacheMemory,
    )
    .option("--max-num-seqs <n>", "most sequences in one step", intArg("--max-num-seqs"), d.maxNumSeqs)
    .option(
      "--max-num-batched-tokens <n>",
      "token budget of one step",
      intArg("--max-num-batched-tokens"),
      d.maxNumBatchedTokens,
    )
    .option("--max-model-len <n>", "context length (default: the model's)", intArg("--max-model-len"), d.maxModelLen)
    .option("--no-enable-prefix-caching", "turn automatic prefix caching off")
    .option("--scheduler <policy>", "continuous | static | naive (baselines)", d.scheduler)
    .option(
      "--default-max-tokens <n>",
      "max_tokens when a request gives none",
      intArg("--default-max-tokens"),
      d.defaultMaxTokens,
    )
    .option("--speculative-model <dir>", "draft model for speculative decoding (same tokenizer)")
    .option("--speculative-method <m>", "draft | ngram (draft is implied by --speculative-model)")
    .option(
      "--num-speculative-tokens <k>",
      `draft tokens per step (default ${DEFAULT_NUM_SPECULATIVE_TOKENS} when speculating)`,
      intArg("--num-speculative-tokens"),
    )
    .option(
      "--ngram-prompt-lookup-min <n>",
      `shortest n-gram looked up (default ${DEFAULT_NGRAM_MIN})`,
      intArg("--ngram-prompt-lookup-min"),
    )
    .option(
      "--ngram-prompt-lookup-max <n>",
      `longest n-gram looked up (default ${DEFAULT_NGRAM_MAX})`,
      intArg("--ngram-prompt-lookup-max"),
    )
    .option(
      "--speculative-disable-by-batch-size <n>",
      `no speculation in steps with more running sequences than this; 0 = never off (default ${DEFAULT_SPEC_DISABLE_BY_BATCH_SIZE})`,
      intArg("--speculative-disable-by-batch-size"),
    );
}

/** Reads the engine flags back from commander's parsed options. */
export function engineOptionsFrom(o: Record<string, unknown>): EngineOptions {
  const pick = <T extends string>(name: string, v: unknown, allowed: readonly T[]): T => {
    if (!allowed.includes(v as T)) throw new Error(`${name} must be one of ${allowed.join(", ")}, got "${String(v)}"`);
    return v as T;
  };
  const d = DEFAULT_ENGINE_OPTIONS;
  return {
    model: String(o.model ?? d.model),
    servedModelName: o.servedModelName ? String(o.servedModelName) : undefined,
    ...deviceOption(pick("--backend", o.backend ?? d.backend, ["auto", "cpu", "reference", "cuda"] as const), o.device),
    threads: typeof o.threads === "number" && o.threads > 0 ? o.threads : undefined,
    gpuMemoryUtilization: fraction("--gpu-memory-utilization", o.gpuMemoryUtilization ?? d.gpuMemoryUtilization),
    quantization: pick("--quantization", o.quantization ?? d.quantization, ["none", "int8", "int4"] as const),
    kvCacheDtype: pick("--kv-cache-dtype", o.kvCacheDtype ?? d.kvCacheDtype, KV_CACHE_DTYPES),
    blockSize: Number(o.blockSize ?? d.blockSize),
    kvCacheMemory: Number(o.kvCacheMemory ?? d.kvCacheMemory),
    maxNumSeqs: Number(o.maxNumSeqs ?? d.maxNumSeqs),
    maxNumBatchedTokens: Number(o.maxNumBatchedTokens ?? d.maxNumBatchedTokens),
    maxModelLen: Number(o.maxModelLen ?? d.maxModelLen),
    enablePrefixCaching: o.enablePrefixCaching !== false,
    scheduler: pick("--scheduler", o.scheduler ?? d.scheduler, ["continuous", "static", "naive"] as const),
    defaultMaxTokens: Number(o.defaultMaxTokens ?? d.defaultMaxTokens),
    ...specOptionsFrom(o),
  };
}

/**
 * `--device` as vLLM spells it (`cuda`, `cuda:1`, `cpu`) or a bare CUDA ordinal; a device naming a backend
 * overrides `--backend auto` and must agree with any other `--backend`.
 */
export function deviceOption(backend: EngineOptions["backend"], v: unknown): Pick<EngineOptions, "backend" | "device"> {
  if (v === undefined || v === null || v === "") return { backend, device: 0 };
  const text = String(v).trim().toLowerCase();
  const m = /^(?:(cuda|cpu)(?::(\d+))?|(\d+))$/.exec(text);
  if (!m) throw new Error(`--device must be cuda, cuda:N, cpu or a CUDA device number, got "${String(v)}"`);
  const named = m[1] as "cuda" | "cpu" | undefined;
  const device = Number(m[2] ?? m[3] ?? 0);
  if (named === "cpu" && m[2] !== undefined) throw new Error(`--device cpu takes no number, got "${String(v)}"`);
  if (named === undefined) return { backend, device };
  if (backend !== "auto" && backend !== named) {
    throw new Error(`--device ${text} contradicts --backend ${backend}`);
  }
  return { backend: named, device };
}

function fraction(name: string, v: unknown): number {
  const x = Number(v);
  if (!(x > 0 && x <= 1)) throw new Error(`${name} must be in (0, 1], got "${String(v)}"`);
  return x;
}

/** The speculative-decoding flags, validated now so that a contradiction fails at the command line. */
function specOptionsFrom(o: Record<string, unknown>): SpecOptions {
  const spec: SpecOptions = {};
  if (o.speculativeModel) spec.speculativeModel = String(o.speculativeModel);
  if (o.speculativeMethod !== undefined) {
    spec.speculativeMethod = String(o.speculativeMethod) as SpecOptions["speculativeMethod"];
  }
  if (o.numSpeculativeTokens !== undefined) spec.numSpeculativeTokens = Number(o.numSpeculativeTokens);
  if (o.ngramPromptLookupMin !== undefined) spec.ngramPromptLookupMin = Number(o.ngramPromptLookupMin);
  if (o.ngramPromptLookupMax !== undefined) spec.ngramPromptLookupMax = Number(o.ngramPromptLookupMax);
  if (o.speculativeDisableByBatchSize !== undefined) {
    spec.speculativeDisableByBatchSize = Number(o.speculativeDisableByBatchSize);
  }
  resolveSpecConfig(spec);
  return spec;
}
