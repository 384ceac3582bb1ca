/**
 * Hugging Face model folder → GGUF file that llama.cpp loads: llama.cpp tensor names, the metadata its
 * loader reads, the tokenizer as tokenizer.ggml.*, and the same tensor conversions as its
 * convert_hf_to_gguf.py (q/k rows permuted for the llama architecture, Gemma norms stored as 1 + w, llama3
 * rope as a rope_freqs tensor). Vectors (norms, biases, rope_freqs) are always F32; matrices take the
 * requested type. Q8_0/Q4_0 need rows of whole 32-blocks; a matrix whose rows are not falls back to F16
 * (as llama.cpp does), with a log line.
 */
import { readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { HostTensor } from "../../backends/backend.ts";
import { type ModelConfig, parseConfig } from "../../models/config.ts";
import { ropeTable } from "../../models/rope.ts";
import { selectChatTemplate } from "../../tokenizer/chat-template.ts";
import { readTokenizerFiles } from "../../tokenizer/model-files.ts";
import { hostBf16, toFloat32 } from "../dtype.ts";
import { ModelFileError } from "../model-file-error.ts";
import { openSafetensors } from "../safetensors.ts";
import { EXPORT_ARCHS, hfToGgufName, interleavedRow, isNormWeight, qkHeads } from "./arch.ts";
import { encodeF16, quantizeQ4_0, quantizeQ4K, quantizeQ6K, quantizeQ8_0 } from "./blocks.ts";
import { LOOM_LLAMA3_KEYS } from "./hf-config.ts";
import { writeTokenizerMetadata } from "./tokenizer-meta.ts";
import { FileType, GgmlType, ggmlBytes } from "./types.ts";
import { GgufWriter } from "./writer.ts";

export const EXPORT_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0"] as const;
export type ExportType = (typeof EXPORT_TYPES)[number];

const MATRIX_TYPE: Record<ExportType, number> = {
  f32: GgmlType.F32,
  f16: GgmlType.F16,
  bf16: GgmlType.BF16,
  q8_0: GgmlType.Q8_0,
  q4_0: GgmlType.Q4_0,
};
const FILE_TYPE: Record<ExportType, number> = {
  f32: FileType.ALL_F32,
  f16: FileType.MOSTLY_F16,
  bf16: FileType.MOSTLY_BF16,
  q8_0: FileType.MOSTLY_Q8_0,
  q4_0: FileType.MOSTLY_Q4_0,
};

export interface ConvertOptions {
  type: ExportType;
  /** Called after each tensor is written: tensors done, total, bytes done, total bytes. */
  onProgress?: (p: { done: number; total: number; bytes: number; totalBytes: number; name: string }) => void;
  /** One-line notes (default: stderr). */
  log?: (line: string) => void;
}

export interface ConvertResult {
  path: string;
  tensors: number;
  bytes: number;
  architecture: string;
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ModelFileError(`${path}: cannot read JSON (${(e as Error).message})`, path);
  }
}

/** Encodes float32 values as a ggml type. */
export function encodeAs(type: number, values: Float32Array): Uint8Array {
  switch (type) {
    case GgmlType.F32:
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case GgmlType.F16:
      return encodeF16(values);
    case GgmlType.BF16:
      return hostBf16(values, [values.length]).data;
    case GgmlType.Q8_0:
      return quantizeQ8_0(values, values.length);
    case GgmlType.Q4_0:
      return quantizeQ4_0(values, values.length);
    case GgmlType.Q4_K:
      return quantizeQ4K(values, values.length);
    case GgmlType.Q6_K:
      return quantizeQ6K(values, values.length);
    default:
      throw new Error(`cannot encode ggml type ${type}`);
  }
}

/**
 * Builds the GGUF writer for `modelDir` (metadata and lazily-produced tensors). The safetensors checkpoint
 * stays open until `close()`. Throws for architectures or features llama.cpp's llama-family loaders would
 * not reproduce.
 */
export async function prepareGguf(
  modelDir: string,
  type: ExportType,
  log: (line: string) => void,
  /** Overrides the ggml type of a matrix (tests and the llama.cpp cross-check write K-quants with it). */
  typeFor?: (hfName: string, shape: readonly number[], chosen: number) => number,
): Promise<{ writer: GgufWriter; cfg: ModelConfig; close: () => void }> {
  const dir = resolve(modelDir);
  const configPath = join(dir, "config.json");
  const raw = readJson(configPath);
  let generation: Record<string, unknown> = {};
  try {
    generation = readJson(join(dir, "generation_config.json"));
  } catch {
    // optional
  }
  const cfg = parseConfig(raw, configPath, generation);
  const arch = EXPORT_ARCHS.get(cfg.architecture);
  if (!arch) {
    throw new Error(`cannot export ${cfg.architecture} to GGUF (supported: ${[...EXPORT_ARCHS.keys()].join(", ")})`);
  }
  if (cfg.traits.sandwichNorms || cfg.attnLogitSoftcap || cfg.finalLogitSoftcap) {
    throw new Error(`cannot export ${cfg.architecture}: its norms or soft-capping have no llama-family GGUF form`);
  }
  const a = arch.name;
  const w = new GgufWriter();
  w.string("general.architecture", a);
  w.string("general.type", "model");
  w.string("general.name", basename(dir));
  w.u32("general.file_type", FILE_TYPE[type]);
  w.u32("general.quantization_version", 2);
  w.u32(`${a}.vocab_size`, cfg.vocabSize);
  w.u32(`${a}.context_length`, cfg.maxPositionEmbeddings);
  w.u32(`${a}.embedding_length`, cfg.hiddenSize);
  w.u32(`${a}.block_count`, cfg.numLayers);
  w.u32(`${a}.feed_forward_length`, cfg.intermediateSize);
  w.u32(`${a}.attention.head_count`, cfg.numHeads);
  w.u32(`${a}.attention.head_count_kv`, cfg.numKvHeads);
  w.u32(`${a}.attention.key_length`, cfg.headDim);
  w.u32(`${a}.attention.value_length`, cfg.headDim);
  w.f32(`${a}.attention.layer_norm_rms_epsilon`, cfg.rmsNormEps);
  const rope = cfg.layers[0].rope;
  if (cfg.layers.some((l) => JSON.stringify(l.rope) !== JSON.stringify(rope))) {
    throw new Error(`cannot export ${cfg.architecture}: layers with different rope settings`);
  }
  const rotaryDim = Math.floor(cfg.headDim * rope.partialRotaryFactor);
  w.f32(`${a}.rope.freq_base`, rope.theta);
  w.u32(`${a}.rope.dimension_count`, rotaryDim);
  let ropeFreqs: Float32Array | null = null;
  if (rope.type === "linear") {
    w.string(`${a}.rope.scaling.type`, "linear");
    w.f32(`${a}.rope.scaling.factor`, rope.factor);
  } else if (rope.type === "yarn") {
    w.string(`${a}.rope.scaling.type`, "yarn");
    w.f32(`${a}.rope.scaling.factor`, rope.factor);
    w.u32(`${a}.rope.scaling.original_context_length`, rope.originalMaxPositionEmbeddings);
    w.f32(`${a}.rope.scaling.yarn_beta_fast`, rope.betaFast);
    w.f32(`${a}.rope.scaling.yarn_beta_slow`, rope.betaSlow);
  } else if (rope.type === "llama3") {
    // llama.cpp divides each frequency by rope_freqs[i]; our import reads the loom.* keys back exactly.
    const base = ropeTable({ ...rope, type: "default" }, cfg.headDim).invFreq;
    const scaled = ropeTable(rope, cfg.headDim).invFreq;
    ropeFreqs = Float32Array.from(base, (v, i) => v / scaled[i]);
    w.u32(`${a}.rope.scaling.original_context_length`, rope.originalMaxPositionEmbeddings);
    w.f32(LOOM_LLAMA3_KEYS.factor, rope.factor);
    w.f32(LOOM_LLAMA3_KEYS.lowFreqFactor, rope.lowFreqFactor);
    w.f32(LOOM_LLAMA3_KEYS.highFreqFactor, rope.highFreqFactor);
    w.u32(LOOM_LLAMA3_KEYS.originalContext, rope.originalMaxPositionEmbeddings);
  } else if (rope.type === "dynamic") {
    log(`loom: dynamic (NTK) rope scaling is not written; llama.cpp will use plain rope`);
  }
  const window = Math.max(...cfg.layers.map((l) => l.slidingWindow));
  if (window > 0) {
    w.u32(`${a}.attention.sliding_window`, window);
    if (a === "llama") log(`loom: sliding window ${window} recorded, but llama.cpp's "llama" architecture ignores it`);
  }

  const files = await readTokenizerFiles(dir);
  writeTokenizerMetadata(
    w,
    {
      tokenizerJson: files.tokenizerJson,
      tokenizerConfig: files.tokenizerConfig,
      generationConfig: files.generationConfig,
      modelConfig: raw,
      chatTemplate: selectChatTemplate(files),
    },
    cfg.vocabSize,
    log,
  );

  const st = openSafetensors(dir);
  try {
    if (ropeFreqs) {
      const v = ropeFreqs;
      w.tensor({
        name: "rope_freqs.weight",
        type: GgmlType.F32,
        shape: [v.length],
        byteLength: v.byteLength,
        data: () => encodeAs(GgmlType.F32, v),
      });
    }
    const order = ["model.embed_tokens.weight"];
    const layerSuffixes = [
      "input_layernorm.weight",
      "self_attn.q_proj.weight",
      "self_attn.q_proj.bias",
      "self_attn.k_proj.weight",
      "self_attn.k_proj.bias",
      "self_attn.v_proj.weight",
      "self_attn.v_proj.bias",
      "self_attn.o_proj.weight",
      "self_attn.q_norm.weight",
      "self_attn.k_norm.weight",
      "post_attention_layernorm.weight",
      "mlp.gate_proj.weight",
      "mlp.up_proj.weight",
      "mlp.down_proj.weight",
    ];
    for (let i = 0; i < cfg.numLayers; i++) for (const s of layerSuffixes) order.push(`model.layers.${i}.${s}`);
    order.push("model.norm.weight");
    if (!cfg.tieWordEmbeddings) order.push("lm_head.weight");
    const known = new Set(order);
    for (const name of st.tensorNames) {
      if (!known.has(name) && !(cfg.tieWordEmbeddings && name === "lm_head.weight")) {
        log(`loom: tensor ${name} has no GGUF counterpart; skipped`);
      }
    }
    let fallbackNoted = false;
    for (const name of order) {
      if (!st.has(name)) {
        if (name.endsWith(".bias") || (name.includes("self_attn.") && name.endsWith("_norm.weight"))) continue;
        throw new ModelFileError(`${dir}: tensor ${name} is missing`, dir, name);
      }
      const info = st.info(name);
      const gguf = hfToGgufName(name) as string;
      const isMatrix = info.shape.length === 2;
      let t = isMatrix ? MATRIX_TYPE[type] : GgmlType.F32;
      // Like llama-quantize, keep the output projection (the tied embedding when there is no lm_head) at
      // higher precision in 4-bit files: Q8_0 here (llama-quantize uses Q6_K, which we do not write).
      const isOutput = name === "lm_head.weight" || (cfg.tieWordEmbeddings && name === "model.embed_tokens.weight");
      if (t === GgmlType.Q4_0 && isOutput) t = GgmlType.Q8_0;
      if (isMatrix && typeFor) t = typeFor(name, info.shape, t);
      if ((t === GgmlType.Q8_0 || t === GgmlType.Q4_0) && info.shape[1] % 32 !== 0) {
        t = GgmlType.F16;
        if (!fallbackNoted)
          log(`loom: rows of ${info.shape[1]} are not whole 32-blocks; such matrices are written as F16`);
        fallbackNoted = true;
      }
      const numel = info.shape.reduce((x, y) => x * y, 1);
      const heads = arch.permuteQK ? qkHeads(name, cfg.numHeads, cfg.numKvHeads) : null;
      const plusOne = arch.normPlusOne && isNormWeight(name);
      w.tensor({
        name: gguf,
        type: t,
        shape: info.shape,
        byteLength: ggmlBytes(t, numel),
        data: () => {
          let values = toFloat32(st.read(name) as HostTensor);
          if (heads !== null) values = permuteRowsF32(values, info.shape[0], numel / info.shape[0], heads);
          if (plusOne) for (let k = 0; k < values.length; k++) values[k] = Math.fround(values[k] + 1);
          return encodeAs(t, values);
        },
      });
    }
  } catch (e) {
    st.close();
    throw e;
  }
  return { writer: w, cfg, close: () => st.close() };
}

/** HF row order → llama.cpp's interleaved q/k row order (see arch.ts). */
function permuteRowsF32(values: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++)
    out.set(values.subarray(r * cols, (r + 1) * cols), interleavedRow(r, rows, heads) * cols);
  return out;
}

/** Converts a Hugging Face model folder to a GGUF file of `opts.type`. */
export async function convertToGguf(modelDir: string, outPath: string, opts: ConvertOptions): Promise<ConvertResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const { writer, cfg, close } = await prepareGguf(modelDir, opts.type, log);
  try {
    const tensors = writer.tensors;
    const totalBytes = tensors.reduce((acc, t) => acc + t.byteLength, 0);
    let bytes = 0;
    const out = resolve(outPath);
    writer.write(out, (i, t) => {
      bytes += t.byteLength;
      opts.onProgress?.({ done: i + 1, total: tensors.length, bytes, totalBytes, name: t.name });
    });
    return { path: out, tensors: tensors.length, bytes: writer.fileSize(), architecture: cfg.architecture };
  } finally {
    close();
  }
}
