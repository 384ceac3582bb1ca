/**
 * GGUF metadata → a Hugging Face config.json object (and generation_config), so that a GGUF model goes
 * through the same `parseConfig` as a model folder.
 *
 *   general.architecture                 → architectures / model_type (arch.ts)
 *   <arch>.embedding_length              → hidden_size
 *   <arch>.block_count                   → num_hidden_layers
 *   <arch>.feed_forward_length           → intermediate_size
 *   <arch>.attention.head_count(_kv)     → num_attention_heads, num_key_value_heads
 *   <arch>.attention.key_length          → head_dim (value_length must equal it)
 *   <arch>.attention.layer_norm_rms_epsilon → rms_norm_eps
 *   <arch>.context_length                → max_position_embeddings
 *   <arch>.rope.freq_base                → rope_theta
 *   <arch>.rope.dimension_count          → partial_rotary_factor (when < head_dim)
 *   <arch>.rope.scaling.{type,factor,original_context_length} → rope_scaling (linear, yarn)
 *   rope_freqs.weight (llama 3 rope)     → rope_scaling {rope_type: "llama3", ...}: from our own
 *                                          loom.rope.llama3.* keys when present, else fitted to the
 *                                          per-frequency factors and verified
 *   <arch>.attention.sliding_window      → sliding_window
 *   token_embd.weight rows               → vocab_size; no output.weight → tie_word_embeddings
 *   tokenizer.ggml.*_token_id            → bos_token_id, eos ids (tokenizer-meta.ts)
 */

import { type RopeSpec, ropeTable } from "../../models/rope.ts";
import { ModelFileError } from "../model-file-error.ts";
import { GGUF_ARCHS, type GgufArch } from "./arch.ts";
import { dequantize } from "./blocks.ts";
import { type GgufFile, show } from "./reader.ts";
import { ggufSpecialTokens } from "./tokenizer-meta.ts";

/** Keys we write for an exact llama3-rope round trip (llama.cpp ignores them and reads rope_freqs). */
export const LOOM_LLAMA3_KEYS = {
  factor: "loom.rope.llama3.factor",
  lowFreqFactor: "loom.rope.llama3.low_freq_factor",
  highFreqFactor: "loom.rope.llama3.high_freq_factor",
  originalContext: "loom.rope.llama3.original_context_length",
} as const;

const FILE_TYPES: Record<number, string> = {
  0: "float32",
  1: "float16",
  2: "q4_0",
  7: "q8_0",
  32: "bfloat16",
};

export interface GgufHfConfig {
  arch: GgufArch;
  config: Record<string, unknown>;
  generation: Record<string, unknown>;
}

/** Maps the GGUF's metadata onto HF config.json keys. Throws ModelFileError naming the file and key. */
export function ggufToHfConfig(file: GgufFile): GgufHfConfig {
  const bad = (msg: string) => new ModelFileError(`${file.path}: ${msg}`, file.path);
  if (file.uint("split.count") !== undefined && (file.uint("split.count") ?? 1) > 1) {
    throw bad(`split GGUF files (split.count = ${file.uint("split.count")}) are not supported; merge them first`);
  }
  const archName = file.string("general.architecture");
  if (archName === undefined) throw bad(`metadata "general.architecture" is missing`);
  const arch = GGUF_ARCHS.get(archName);
  if (!arch) {
    throw bad(`unsupported GGUF architecture ${show(archName)} (supported: ${[...GGUF_ARCHS.keys()].join(", ")})`);
  }
  const key = (k: string) => `${archName}.${k}`;
  const need = (k: string): number => {
    const v = uniform(k);
    if (v === undefined) throw bad(`metadata "${key(k)}" is missing`);
    return v;
  };
  // Some files store per-layer arrays (head counts, ffn length); we need them uniform.
  const uniform = (k: string): number | undefined => {
    const kv = file.get(key(k));
    if (!kv) return undefined;
    if (kv.itemType === null) return file.uint(key(k));
    const arr = file.numberArray(key(k)) ?? [];
    if (arr.length === 0 || Array.prototype.some.call(arr, (v: number) => v !== arr[0])) {
      throw bad(`metadata "${key(k)}" varies per layer, which is not supported`);
    }
    const v = Number(arr[0]);
    if (!Number.isInteger(v) || v < 0) throw bad(`metadata "${key(k)}" must hold non-negative integers`);
    return v;
  };
  const positive = (k: string, v: number) => {
    if (!Number.isInteger(v) || v <= 0) throw bad(`metadata "${key(k)}" must be a positive integer (got ${v})`);
    return v;
  };

  const hidden = positive("embedding_length", need("embedding_length"));
  const layers = positive("block_count", need("block_count"));
  const heads = positive("attention.head_count", need("attention.head_count"));
  const kvHeads = positive("attention.head_count_kv", uniform("attention.head_count_kv") ?? heads);
  const ffn = positive("feed_forward_length", need("feed_forward_length"));
  const headDim = positive("attention.key_length", uniform("attention.key_length") ?? hidden / heads);
  const valueLen = uniform("attention.value_length");
  if (valueLen !== undefined && valueLen !== headDim) {
    throw bad(`value_length ${valueLen} differs from key_length ${headDim}, which is not supported`);
  }
  if (heads % kvHeads !== 0) throw bad(`head_count ${heads} is not a multiple of head_count_kv ${kvHeads}`);

  const embd = file.tensors.get("token_embd.weight");
  if (!embd) throw bad(`tensor "token_embd.weight" is missing`);
  if (embd.shape.length !== 2 || embd.shape[1] !== hidden) {
    throw bad(`tensor "token_embd.weight" has shape [${embd.shape}], expected [vocab, ${hidden}]`);
  }
  const theta = file.number(key("rope.freq_base")) ?? 10000;
  const config: Record<string, unknown> = {
    architectures: [arch.hfArchitecture],
    model_type: arch.modelType,
    hidden_size: hidden,
    intermediate_size: ffn,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    rms_norm_eps: file.number(key("attention.layer_norm_rms_epsilon")) ?? 1e-5,
    max_position_embeddings: positive("context_length", file.uint(key("context_length")) ?? 2048),
    vocab_size: embd.shape[0],
    rope_theta: theta,
    tie_word_embeddings: !file.has("output.weight"),
    torch_dtype: FILE_TYPES[file.uint("general.file_type") ?? -1] ?? "gguf",
  };
  if (arch.name === "gemma") config.hidden_activation = "gelu_pytorch_tanh";
  if (file.has("blk.0.attn_q.bias") && arch.name !== "qwen2") config.attention_bias = true;
  const rotary = file.uint(key("rope.dimension_count"));
  if (rotary !== undefined && rotary !== headDim) {
    if (rotary <= 0 || rotary > headDim || rotary % 2 !== 0) {
      throw bad(`rope.dimension_count ${rotary} is invalid for head size ${headDim}`);
    }
    config.partial_rotary_factor = rotary / headDim;
  }
  const window = file.uint(key("attention.sliding_window"));
  if (window !== undefined && window > 0) config.sliding_window = window;

  const scalingType = file.string(key("rope.scaling.type"));
  const factor = file.number(key("rope.scaling.factor"));
  const origCtx = file.uint(key("rope.scaling.original_context_length"));
  if (scalingType === "linear" && factor !== undefined && factor !== 1) {
    config.rope_scaling = { rope_type: "linear", factor };
  } else if (scalingType === "yarn" && factor !== undefined) {
    config.rope_scaling = {
      rope_type: "yarn",
      factor,
      original_max_position_embeddings: origCtx ?? config.max_position_embeddings,
      beta_fast: file.number(key("rope.scaling.yarn_beta_fast")) ?? 32,
      beta_slow: file.number(key("rope.scaling.yarn_beta_slow")) ?? 1,
    };
  } else if (scalingType !== undefined && scalingType !== "none" && scalingType !== "linear") {
    throw bad(`rope scaling type ${show(scalingType)} is not supported (none, linear, yarn are)`);
  }
  if (file.has("rope_freqs.weight")) {
    const rotaryDim = rotary ?? headDim;
    const llama3 = llama3FromFile(file, theta, rotaryDim, origCtx);
    if (llama3) config.rope_scaling = llama3;
  }

  const special = ggufSpecialTokens(file);
  if (special.bos !== null) config.bos_token_id = special.bos;
  if (special.eos !== null) config.eos_token_id = special.eos;
  const generation: Record<string, unknown> = { eos_token_id: special.eog };
  if (special.bos !== null) generation.bos_token_id = special.bos;
  return { arch, config, generation };
}

/** llama3 rope parameters for a file with rope_freqs.weight; null when its factors are all 1. */
function llama3FromFile(
  file: GgufFile,
  theta: number,
  rotaryDim: number,
  origCtx: number | undefined,
): Record<string, unknown> | null {
  const bad = (msg: string) =>
    new ModelFileError(`${file.path}: tensor "rope_freqs.weight": ${msg}`, file.path, "rope_freqs.weight");
  const t = file.tensor("rope_freqs.weight");
  if (t.shape.length !== 1 || t.shape[0] !== rotaryDim / 2) {
    throw bad(`shape [${t.shape}] does not match ${rotaryDim / 2} rope frequencies`);
  }
  let ff: Float32Array;
  try {
    ff = dequantize(t.type, file.readTensorBytes(t.name), t.numElements);
  } catch (e) {
    if (e instanceof ModelFileError) throw e;
    throw bad((e as Error).message);
  }
  const spec = (factor: number, lf: number, hf: number, o: number): RopeSpec => ({
    theta,
    type: "llama3",
    factor,
    lowFreqFactor: lf,
    highFreqFactor: hf,
    originalMaxPositionEmbeddings: o,
    betaFast: 32,
    betaSlow: 1,
    attentionFactor: null,
    partialRotaryFactor: 1,
  });
  const base = ropeTable({ ...spec(1, 1, 4, 8192), type: "default" }, rotaryDim).invFreq;
  const target = Float64Array.from(base, (v, i) => v / ff[i]);
  const matches = (s: RopeSpec) => {
    const inv = ropeTable(s, rotaryDim).invFreq;
    return inv.every((v, i) => Math.abs(v - target[i]) <= 1e-5 * Math.abs(target[i]) + 1e-12);
  };
  const asJson = (s: RopeSpec) => ({
    rope_type: "llama3",
    rope_theta: theta,
    factor: s.factor,
    low_freq_factor: s.lowFreqFactor,
    high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositionEmbeddings,
  });
  if (!ff.every((v) => Number.isFinite(v) && v > 0)) throw bad("factors must be positive finite numbers");
  if (ff.every((v) => Math.abs(v - 1) < 1e-6)) return null;

  // Our own export records the parameters; use them when they reproduce the factors.
  const own = [LOOM_LLAMA3_KEYS.factor, LOOM_LLAMA3_KEYS.lowFreqFactor, LOOM_LLAMA3_KEYS.highFreqFactor].map((k) =>
    file.number(k),
  );
  const ownCtx = file.uint(LOOM_LLAMA3_KEYS.originalContext) ?? origCtx;
  if (own.every((v) => v !== undefined) && ownCtx !== undefined) {
    const s = spec(own[0] as number, own[1] as number, own[2] as number, ownCtx);
    if (matches(s)) return asJson(s);
  }
  const fitted = fitLlama3(ff, base, origCtx ?? ownCtx ?? 8192);
  if (fitted) {
    const s = spec(fitted.factor, fitted.lowFreqFactor, fitted.highFreqFactor, fitted.originalContext);
    if (matches(s)) return asJson(s);
  }
  throw bad("its per-frequency factors are not of the llama3 form; this rope scaling is not supported");
}

/**
 * Finds llama3 rope parameters reproducing per-frequency divisors `ff` (llama.cpp's rope_freqs).
 *
 * llama3 scaling, with x = 1/wavelength = invFreq/2π and O the original context:
 *   x < lf/O → divide by factor;  x > hf/O → keep;  between → 1/ff = (1−s)/factor + s, s = (O·x − lf)/(hf − lf)
 * so s is a line in x through the "smooth" frequencies. Given O, two smooth points fix lf and hf; with
 * fewer, any line that puts the 0 and 1 crossings between the neighbouring classified frequencies
 * reproduces the factors. The caller verifies the result.
 */
export function fitLlama3(
  ff: ArrayLike<number>,
  invFreq: ArrayLike<number>,
  originalContext: number,
): { factor: number; lowFreqFactor: number; highFreqFactor: number; originalContext: number } | null {
  const n = ff.length;
  let factor = 1;
  for (let i = 0; i < n; i++) factor = Math.max(factor, ff[i]);
  if (factor <= 1) return null;
  const tol = 1e-4;
  const lo: number[] = [];
  const hi: number[] = [];
  const mid: { x: number; s: number }[] = [];
  for (let i = 0; i < n; i++) {
    const x = invFreq[i] / (2 * Math.PI);
    if (Math.abs(ff[i] - 1) <= tol) hi.push(x);
    else if (Math.abs(ff[i] - factor) <= tol * factor) lo.push(x);
    else if (ff[i] > 1 && ff[i] < factor) mid.push({ x, s: (1 / ff[i] - 1 / factor) / (1 - 1 / factor) });
    else return null;
  }
  const xLo = lo.length ? Math.max(...lo) : 0;
  const xHi = hi.length ? Math.min(...hi) : Number.POSITIVE_INFINITY;
  let a: number;
  let b: number;
  if (mid.length >= 2) {
    mid.sort((p, q) => p.x - q.x);
    const p = mid[0];
    const q = mid[mid.length - 1];
    a = (q.s - p.s) / (q.x - p.x);
    b = p.s - a * p.x;
  } else if (mid.length === 1) {
    const { x, s } = mid[0];
    // Zero crossing z in [max(xLo, zMin), x) so that s(xHi) ≥ 1 as well.
    const zMin = Number.isFinite(xHi) ? (x - s * xHi) / (1 - s) : Number.NEGATIVE_INFINITY;
    const zLow = Math.max(xLo, zMin);
    const z = (zLow + x) / 2;
    a = s / (x - z);
    b = -a * z;
  } else {
    const top = Number.isFinite(xHi) ? xHi : xLo * 4 + 1;
    const z = xLo + (top - xLo) / 3;
    const w = xLo + (2 * (top - xLo)) / 3;
    a = 1 / (w - z);
    b = -a * z;
  }
  if (!(a > 0) || !Number.isFinite(b)) return null;
  const o = originalContext;
  const lowFreqFactor = (-b * o) / a;
  const highFreqFactor = lowFreqFactor + o / a;
  if (!(lowFreqFactor > 0) || !(highFreqFactor > lowFreqFactor)) return null;
  return { factor, lowFreqFactor, highFreqFactor, originalContext: o };
}
