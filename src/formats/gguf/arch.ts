/**
 * The llama-family architectures as llama.cpp names them in GGUF, and the tensor-name mapping between
 * Hugging Face checkpoints and GGUF files.
 *
 * Two conversions that llama.cpp's convert_hf_to_gguf.py applies, and which we undo on import and apply on
 * export:
 *
 * - llama (also Mistral, which llama.cpp converts as "llama"): the rows of q_proj and k_proj (weights and
 *   biases) are permuted per head so that llama.cpp's interleaved ("normal", GPT-J style) rope rotates the
 *   same pairs as HF's rotate-half rope. Per head of `hd` rows:
 *
 *       HF row   a·hd/2 + i   (a ∈ {0, 1}: first or second half, i < hd/2)
 *       GGUF row 2·i + a
 *
 *       HF    [ x0 x1 x2 x3 | y0 y1 y2 y3 ]      (rotate-half pairs x_i with y_i)
 *       GGUF  [ x0 y0 x1 y1 x2 y2 x3 y3 ]        (interleaved pairs 2i, 2i+1)
 *
 *   qwen2, qwen3 and gemma use NEOX (rotate-half) rope in llama.cpp and are not permuted.
 * - gemma: llama.cpp's RMSNorm multiplies by w, HF Gemma's by (1 + w), so every *norm.weight is stored + 1.
 */

export interface GgufArch {
  /** general.architecture */
  name: string;
  /** The HF class our registry knows (src/models/registry.ts). */
  hfArchitecture: string;
  modelType: string;
  /** q/k rows permuted for interleaved rope (llama). */
  permuteQK: boolean;
  /** Norm weights stored as 1 + w (gemma). */
  normPlusOne: boolean;
}

const LLAMA: GgufArch = {
  name: "llama",
  hfArchitecture: "LlamaForCausalLM",
  modelType: "llama",
  permuteQK: true,
  normPlusOne: false,
};

/** Keyed by general.architecture. */
export const GGUF_ARCHS: ReadonlyMap<string, GgufArch> = new Map([
  ["llama", LLAMA],
  // Not written by llama.cpp today (it converts Mistral as "llama"), accepted for older files.
  ["mistral", { ...LLAMA, name: "mistral", hfArchitecture: "MistralForCausalLM", modelType: "mistral" }],
  [
    "qwen2",
    { name: "qwen2", hfArchitecture: "Qwen2ForCausalLM", modelType: "qwen2", permuteQK: false, normPlusOne: false },
  ],
  [
    "qwen3",
    { name: "qwen3", hfArchitecture: "Qwen3ForCausalLM", modelType: "qwen3", permuteQK: false, normPlusOne: false },
  ],
  [
    "gemma",
    { name: "gemma", hfArchitecture: "GemmaForCausalLM", modelType: "gemma", permuteQK: false, normPlusOne: true },
  ],
]);

/** HF architecture → the GGUF architecture we write (as llama.cpp's converter does). */
export const EXPORT_ARCHS: ReadonlyMap<string, GgufArch> = new Map([
  ["LlamaForCausalLM", LLAMA],
  ["MistralForCausalLM", LLAMA],
  ["Qwen2ForCausalLM", GGUF_ARCHS.get("qwen2") as GgufArch],
  ["Qwen3ForCausalLM", GGUF_ARCHS.get("qwen3") as GgufArch],
  ["GemmaForCausalLM", GGUF_ARCHS.get("gemma") as GgufArch],
]);

/** Per-layer HF suffix → GGUF suffix (under model.layers.N. and blk.N.). */
const LAYER_NAMES: readonly [string, string][] = [
  ["input_layernorm.weight", "attn_norm.weight"],
  ["self_attn.q_proj.weight", "attn_q.weight"],
  ["self_attn.k_proj.weight", "attn_k.weight"],
  ["self_attn.v_proj.weight", "attn_v.weight"],
  ["self_attn.q_proj.bias", "attn_q.bias"],
  ["self_attn.k_proj.bias", "attn_k.bias"],
  ["self_attn.v_proj.bias", "attn_v.bias"],
  ["self_attn.o_proj.weight", "attn_output.weight"],
  ["self_attn.q_norm.weight", "attn_q_norm.weight"],
  ["self_attn.k_norm.weight", "attn_k_norm.weight"],
  ["post_attention_layernorm.weight", "ffn_norm.weight"],
  ["mlp.gate_proj.weight", "ffn_gate.weight"],
  ["mlp.up_proj.weight", "ffn_up.weight"],
  ["mlp.down_proj.weight", "ffn_down.weight"],
];

const GLOBAL_NAMES: readonly [string, string][] = [
  ["model.embed_tokens.weight", "token_embd.weight"],
  ["model.norm.weight", "output_norm.weight"],
  ["lm_head.weight", "output.weight"],
];

const HF_LAYER = /^model\.layers\.(\d+)\.(.+)$/;
const GGUF_LAYER = /^blk\.(\d+)\.(.+)$/;

/** The GGUF name of an HF tensor, or null when it has none. */
export function hfToGgufName(hf: string): string | null {
  for (const [h, g] of GLOBAL_NAMES) if (h === hf) return g;
  const m = HF_LAYER.exec(hf);
  if (!m) return null;
  for (const [h, g] of LAYER_NAMES) if (h === m[2]) return `blk.${m[1]}.${g}`;
  return null;
}

/** The HF name of a GGUF tensor, or null when it has none (rope_freqs, unknown tensors). */
export function ggufToHfName(gguf: string): string | null {
  for (const [h, g] of GLOBAL_NAMES) if (g === gguf) return h;
  const m = GGUF_LAYER.exec(gguf);
  if (!m) return null;
  for (const [h, g] of LAYER_NAMES) if (g === m[2]) return `model.layers.${m[1]}.${h}`;
  return null;
}

/** Whether an HF tensor is a q or k projection that llama-arch files permute, and with how many heads. */
export function qkHeads(hfName: string, numHeads: number, numKvHeads: number): number | null {
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return numKvHeads;
  return null;
}

/** Whether an HF tensor is a norm weight (stored + 1 in gemma GGUFs). */
export function isNormWeight(hfName: string): boolean {
  return /norm\.weight$/.test(hfName);
}

/**
 * The row of the GGUF (interleaved) tensor that holds HF row `r` of a q/k projection with `heads` heads of
 * `rows / heads` rows each. Used both ways: import gathers hf[r] = gguf[map(r)], export scatters.
 */
export function interleavedRow(r: number, rows: number, heads: number): number {
  const hd = rows / heads;
  const half = hd / 2;
  const h = Math.floor(r / hd);
  const w = r % hd;
  const a = w >= half ? 1 : 0;
  const i = w - a * half;
  return h * hd + 2 * i + a;
}

/**
 * Permutes whole rows of a tensor's raw bytes (any ggml type: rows are independent blocks).
 * direction "toHf": out row r = in row map(r); "toGguf": out row map(r) = in row r.
 */
export function permuteQKRows(
  bytes: Uint8Array,
  rows: number,
  heads: number,
  direction: "toHf" | "toGguf",
): Uint8Array {
  if (rows % heads !== 0 || (rows / heads) % 2 !== 0) {
    throw new Error(`cannot permute ${rows} rows for ${heads} heads (head size must be even)`);
  }
  const rowBytes = bytes.length / rows;
  const out = new Uint8Array(bytes.length);
  for (let r = 0; r < rows; r++) {
    const g = interleavedRow(r, rows, heads);
    if (direction === "toHf") out.set(bytes.subarray(g * rowBytes, (g + 1) * rowBytes), r * rowBytes);
    else out.set(bytes.subarray(r * rowBytes, (r + 1) * rowBytes), g * rowBytes);
  }
  return out;
}
