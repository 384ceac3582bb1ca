/**
 * Model configuration: reads an HF `config.json` (both the transformers v4 form — `rope_theta`,
 * `rope_scaling`, `torch_dtype` — and the v5 form — `rope_parameters`, `dtype`) plus
 * `generation_config.json`, and resolves it through the architecture registry into one normalized
 * `ModelConfig` that the llama-family graph is driven by.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ggufToHfConfig } from "../formats/gguf/hf-config.ts";
import { GgufFile, isGgufFile } from "../formats/gguf/reader.ts";
import { ModelFileError } from "../formats/model-file-error.ts";
import { type ArchTraits, resolveArchitecture } from "./registry.ts";
import { parseRopeSpec, type RopeSpec } from "./rope.ts";

export interface LayerSpec {
  /** 0 = full attention. */
  slidingWindow: number;
  rope: RopeSpec;
}

export interface ModelConfig {
  architecture: string;
  modelType: string;
  traits: ArchTraits;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  hiddenAct: "silu" | "gelu_tanh";
  attentionBias: boolean;
  /** Softmax scale of attention scores. */
  attnScale: number;
  attnLogitSoftcap: number;
  finalLogitSoftcap: number;
  layers: LayerSpec[];
  /** The checkpoint's dtype ("bfloat16", "float32", …). */
  dtype: string;
  eosTokenIds: number[];
  bosTokenId: number | null;
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ModelFileError(`${path}: cannot read JSON (${(e as Error).message})`, path);
  }
}

function int(c: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = c[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new ModelFileError(`${file}: "${key}" must be a positive integer (got ${JSON.stringify(v)})`, file);
  }
  return v;
}

function idList(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

function activation(c: Record<string, unknown>, file: string): "silu" | "gelu_tanh" {
  const act = String(c.hidden_activation ?? c.hidden_act ?? "silu");
  if (act === "silu" || act === "swish") return "silu";
  if (act === "gelu_pytorch_tanh" || act === "gelu_new" || act === "gelu_tanh") return "gelu_tanh";
  // Legacy Gemma configs say "gelu" but the reference implementation uses the tanh approximation.
  if (act === "gelu") return "gelu_tanh";
  throw new ModelFileError(`${file}: unsupported activation "${act}"`, file);
}

/** Parses a raw config object (the contents of config.json). */
export function parseConfig(
  c: Record<string, unknown>,
  file = "config.json",
  generation: Record<string, unknown> = {},
): ModelConfig {
  const { name, traits } = resolveArchitecture(c);
  const hiddenSize = int(c, "hidden_size", file);
  const numHeads = int(c, "num_attention_heads", file);
  const numKvHeads = int(c, "num_key_value_heads", file, numHeads);
  const headDim = typeof c.head_dim === "number" ? c.head_dim : hiddenSize / numHeads;
  const numLayers = int(c, "num_hidden_layers", file);
  const maxPos = int(c, "max_position_embeddings", file, 2048);

  // Rope: v5 `rope_parameters` (possibly per layer type) or v4 `rope_theta` + `rope_scaling`.
  const legacyTheta = typeof c.rope_theta === "number" ? c.rope_theta : 10000;
  const ropeParams = (c.rope_parameters ?? null) as Record<string, unknown> | null;
  const ropeFor = (layerType: string): RopeSpec => {
    if (ropeParams) {
      const perType = ropeParams[layerType];
      const raw = perType && typeof perType === "object" ? (perType as Record<string, unknown>) : ropeParams;
      const spec = parseRopeSpec(raw, legacyTheta, maxPos);
      if (typeof c.partial_rotary_factor === "number") spec.partialRotaryFactor = c.partial_rotary_factor;
      return spec;
    }
    const scaling = (c.rope_scaling ?? {}) as Record<string, unknown>;
    // Gemma 3 (v4 form): sliding layers use rope_local_base_freq and no scaling.
    if (layerType === "sliding_attention" && typeof c.rope_local_base_freq === "number") {
      return parseRopeSpec({ rope_theta: c.rope_local_base_freq }, legacyTheta, maxPos);
    }
    const spec = parseRopeSpec({ rope_theta: legacyTheta, ...scaling }, legacyTheta, maxPos);
    if (typeof c.partial_rotary_factor === "number") spec.partialRotaryFactor = c.partial_rotary_factor;
    return spec;
  };

  const window = typeof c.sliding_window === "number" && c.use_sliding_window !== false ? c.sliding_window : 0;
  let layerTypes: string[];
  if (Array.isArray(c.layer_types)) {
    layerTypes = c.layer_types.map(String);
  } else if (traits.slidingPattern > 0) {
    const pattern = typeof c._sliding_window_pattern === "number" ? c._sliding_window_pattern : traits.slidingPattern;
    layerTypes = Array.from({ length: numLayers }, (_, i) =>
      (i + 1) % pattern === 0 ? "full_attention" : "sliding_attention",
    );
  } else {
    layerTypes = Array.from({ length: numLayers }, () => (window > 0 ? "sliding_attention" : "full_attention"));
  }
  if (layerTypes.length !== numLayers) {
    throw new ModelFileError(`${file}: layer_types has ${layerTypes.length} entries for ${numLayers} layers`, file);
  }
  const layers = layerTypes.map((t) => ({
    slidingWindow: t === "sliding_attention" ? window : 0,
    rope: ropeFor(t),
  }));

  const queryPreAttnScalar = typeof c.query_pre_attn_scalar === "number" ? c.query_pre_attn_scalar : headDim;
  const eos = [...idList(generation.eos_token_id), ...idList(c.eos_token_id)];
  return {
    architecture: name,
    modelType: String(c.model_type ?? ""),
    traits,
    vocabSize: int(c, "vocab_size", file),
    hiddenSize,
    intermediateSize: int(c, "intermediate_size", file),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: typeof c.rms_norm_eps === "number" ? c.rms_norm_eps : 1e-6,
    tieWordEmbeddings: typeof c.tie_word_embeddings === "boolean" ? c.tie_word_embeddings : traits.defaultTied,
    maxPositionEmbeddings: maxPos,
    hiddenAct: activation(c, file),
    attentionBias: c.attention_bias === true || traits.qkvBias,
    attnScale: queryPreAttnScalar ** -0.5,
    attnLogitSoftcap: typeof c.attn_logit_softcapping === "number" ? c.attn_logit_softcapping : 0,
    finalLogitSoftcap: typeof c.final_logit_softcapping === "number" ? c.final_logit_softcapping : 0,
    layers,
    dtype: String(c.dtype ?? c.torch_dtype ?? "float32"),
    eosTokenIds: [...new Set(eos)],
    bosTokenId: typeof c.bos_token_id === "number" ? c.bos_token_id : null,
  };
}

/** The config of a GGUF file: its metadata mapped onto config.json keys (formats/gguf/hf-config.ts), parsed. */
export function configFromGguf(file: GgufFile): ModelConfig {
  const { config, generation } = ggufToHfConfig(file);
  return parseConfig(config, file.path, generation);
}

/**
 * Loads `config.json` and `generation_config.json` (optional) from a model folder, or the equivalent
 * from the metadata of a `.gguf` file.
 */
export function loadConfig(modelDir: string): ModelConfig {
  if (isGgufFile(modelDir)) {
    const file = GgufFile.open(modelDir);
    try {
      return configFromGguf(file);
    } finally {
      file.close();
    }
  }
  const file = join(modelDir, "config.json");
  if (!existsSync(file)) throw new ModelFileError(`${file}: not found (is ${modelDir} a model folder?)`, file);
  const genFile = join(modelDir, "generation_config.json");
  const generation = existsSync(genFile) ? readJson(genFile) : {};
  return parseConfig(readJson(file), file, generation);
}
