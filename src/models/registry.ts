/**
 * The architecture registry: every supported HF architecture is the one llama-family graph with a few
 * switches. Adding a family means adding a row here (and, if it needs a new switch, teaching the graph).
 */
import { ModelFileError } from "../formats/model-file-error.ts";

export interface ArchTraits {
  /** RMSNorm multiplies by (1 + w) (Gemma). */
  normPlusOne: boolean;
  /** Embeddings are scaled by sqrt(hidden_size) (Gemma). */
  scaleEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2). */
  qkvBias: boolean;
  /** Per-head RMSNorm on q and k before rope (Qwen3, Gemma 3). */
  qkNorm: boolean;
  /** Extra norms: post-attention output norm and pre/post feed-forward norms (Gemma 2/3). */
  sandwichNorms: boolean;
  /** Checkpoint stores fused qkv_proj / gate_up_proj (Phi-3). */
  fusedCheckpoint: boolean;
  /** Default for tie_word_embeddings when the config omits it. */
  defaultTied: boolean;
  /** Every Nth layer is full attention, the rest sliding, when layer_types is absent (Gemma 3); 0 = none. */
  slidingPattern: number;
}

const base: ArchTraits = {
  normPlusOne: false,
  scaleEmbeddings: false,
  qkvBias: false,
  qkNorm: false,
  sandwichNorms: false,
  fusedCheckpoint: false,
  defaultTied: false,
  slidingPattern: 0,
};

const gemma: ArchTraits = { ...base, normPlusOne: true, scaleEmbeddings: true, defaultTied: true };

/** Keyed by the `architectures[0]` name; `model_type` aliases below. */
export const ARCHITECTURES: Record<string, ArchTraits> = {
  LlamaForCausalLM: base,
  MistralForCausalLM: base,
  Qwen2ForCausalLM: { ...base, qkvBias: true },
  Qwen3ForCausalLM: { ...base, qkNorm: true },
  GemmaForCausalLM: gemma,
  Gemma3ForCausalLM: { ...gemma, qkNorm: true, sandwichNorms: true, slidingPattern: 6 },
  Phi3ForCausalLM: { ...base, fusedCheckpoint: true },
};

const MODEL_TYPES: Record<string, string> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
  gemma: "GemmaForCausalLM",
  gemma3_text: "Gemma3ForCausalLM",
  phi3: "Phi3ForCausalLM",
};

/** Finds the traits for a raw config by `architectures` then `model_type`; unknown ones list what is supported. */
export function resolveArchitecture(c: Record<string, unknown>): { name: string; traits: ArchTraits } {
  const archs = Array.isArray(c.architectures) ? c.architectures.map(String) : [];
  for (const a of archs) {
    if (ARCHITECTURES[a]) return { name: a, traits: ARCHITECTURES[a] };
  }
  const byType = MODEL_TYPES[String(c.model_type)];
  if (byType) return { name: byType, traits: ARCHITECTURES[byType] };
  const what = archs.length ? archs.join(", ") : `model_type "${String(c.model_type)}"`;
  throw new ModelFileError(
    `unsupported architecture ${what}; supported: ${Object.keys(ARCHITECTURES).join(", ")} ` +
      `(model_type ${Object.keys(MODEL_TYPES).join(", ")})`,
  );
}
