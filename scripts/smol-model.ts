/**
 * A random-weight model of the SmolLM2-360M shape (hidden 960, 32 layers, 15 heads / 5 KV heads,
 * intermediate 2560, vocab 49152, tied embeddings), written as an HF folder with bf16 safetensors and
 * tiny-llama's tokenizer padded with "[PADn]" tokens. For benchmarks of a model whose
 * weights do not fit in cache; never committed (690 MB).
 *
 *   node --import tsx scripts/smol-model.ts OUT_PARENT_DIR     → OUT_PARENT_DIR/smol-360m-random
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { HostTensor, WeightDType } from "../src/backends/backend.ts";
import { f32ToBf16 } from "../src/formats/dtype.ts";
import type { SafetensorsModel, TensorInfo } from "../src/formats/safetensors.ts";
import type { ModelConfig } from "../src/models/config.ts";

const TINY = fileURLToPath(new URL("../models/tiny-llama", import.meta.url));

/** The dimensions random llama-family checkpoints are made from. */
export type LlamaShape = Pick<
  ModelConfig,
  "hiddenSize" | "intermediateSize" | "numLayers" | "numHeads" | "numKvHeads" | "headDim" | "vocabSize"
>;

/** SmolLM2-360M's config.json (the shape; the weights here are random). */
export const SMOL_360M = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 960,
  intermediate_size: 2560,
  num_hidden_layers: 32,
  num_attention_heads: 15,
  num_key_value_heads: 5,
  head_dim: 64,
  vocab_size: 49152,
  tie_word_embeddings: true,
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  max_position_embeddings: 8192,
  hidden_act: "silu",
};

/** Every tensor of a tied-embedding llama checkpoint with its shape, in file order. */
export function llamaTensorShapes(c: LlamaShape): [string, number[]][] {
  const { hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim } = c;
  const shapes: [string, number[]][] = [["model.embed_tokens.weight", [c.vocabSize, H]]];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}.`;
    shapes.push(
      [`${p}input_layernorm.weight`, [H]],
      [`${p}self_attn.q_proj.weight`, [numHeads * headDim, H]],
      [`${p}self_attn.k_proj.weight`, [numKvHeads * headDim, H]],
      [`${p}self_attn.v_proj.weight`, [numKvHeads * headDim, H]],
      [`${p}self_attn.o_proj.weight`, [H, numHeads * headDim]],
      [`${p}post_attention_layernorm.weight`, [H]],
      [`${p}mlp.gate_proj.weight`, [I, H]],
      [`${p}mlp.up_proj.weight`, [I, H]],
      [`${p}mlp.down_proj.weight`, [H, I]],
    );
  }
  shapes.push(["model.norm.weight", [H]]);
  return shapes;
}

/**
 * A pool of random bf16 words (sum of three uniforms: normal-ish, std ≈ 0.02, never NaN), stored twice
 * in a row so that any `size` consecutive words starting in the first half can be sliced; `rnd` is the
 * xorshift generator, for picking slice offsets.
 */
export function randomBf16Pool(size = 1 << 22): { pool: Uint16Array; size: number; rnd: () => number } {
  const pool = new Uint16Array(2 * size);
  let s = 0x9e3779b9;
  const rnd = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  for (let i = 0; i < size; i++) pool[i] = f32ToBf16((rnd() + rnd() + rnd() - 1.5) * 0.04);
  pool.copyWithin(size, 0, size);
  return { pool, size, rnd };
}

/** An in-memory checkpoint of `cfg` with random bf16 weights (std ≈ 0.02, norms = 1), made on read. */
export function randomCheckpoint(cfg: ModelConfig): SafetensorsModel {
  const shapes = new Map(llamaTensorShapes(cfg));
  const { pool, size: POOL, rnd } = randomBf16Pool(1 << 20);
  const info = (name: string): TensorInfo => {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`no tensor ${name}`);
    const n = shape.reduce((a, b) => a * b, 1);
    return { name, dtype: "bf16", shape, file: "<random>", offset: 0, byteLength: 2 * n };
  };
  return {
    tensorNames: [...shapes.keys()],
    has: (name) => shapes.has(name),
    info,
    read(name): HostTensor {
      const { shape } = info(name);
      const n = shape.reduce((a, b) => a * b, 1);
      const out = new Uint16Array(n);
      if (shape.length === 1) {
        out.fill(0x3f80); // 1.0
      } else {
        const off = Math.floor(rnd() * POOL);
        for (let o = 0; o < n; o += POOL) out.set(pool.subarray(off, off + Math.min(POOL, n - o)), o);
      }
      return { dtype: "bf16" as WeightDType, shape, data: new Uint8Array(out.buffer) };
    },
    close() {},
  };
}

/** Writes a random-weight model of the SmolLM2-360M shape as an HF folder (bf16 safetensors). */
export function makeSmolModel(dir: string): string {
  const out = join(dir, "smol-360m-random");
  mkdirSync(out, { recursive: true });
  const { hidden_size: H, intermediate_size: I, num_hidden_layers: L, vocab_size: V } = SMOL_360M;
  const { num_attention_heads: heads, num_key_value_heads: kv, head_dim: hd } = SMOL_360M;
  const config = { ...SMOL_360M, bos_token_id: 0, eos_token_id: 2, torch_dtype: "bfloat16" };
  writeFileSync(join(out, "config.json"), JSON.stringify(config, null, 2));
  for (const f of ["tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]) {
    writeFileSync(join(out, f), readFileSync(join(TINY, f)));
  }
  // tiny-llama's 4096 tokens plus "[PADn]" entries up to the model's vocabulary, so that every id the
  // random model emits decodes to visible text (streaming clients then see each token arrive)
  const tok = JSON.parse(readFileSync(join(TINY, "tokenizer.json"), "utf8"));
  for (let i = Object.keys(tok.model.vocab).length; i < V; i++) tok.model.vocab[`[PAD${i}]`] = i;
  writeFileSync(join(out, "tokenizer.json"), JSON.stringify(tok));
  const shapes = llamaTensorShapes({
    hiddenSize: H,
    intermediateSize: I,
    numLayers: L,
    numHeads: heads,
    numKvHeads: kv,
    headDim: hd,
    vocabSize: V,
  });
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, shape] of shapes) {
    const bytes = 2 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: "BF16", shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const fd = openSync(join(out, "model.safetensors"), "w");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeSync(fd, len);
  writeSync(fd, Buffer.from(json));
  const { pool, size: POOL, rnd } = randomBf16Pool();
  const one = f32ToBf16(1);
  for (const [, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (shape.length === 1) {
      writeSync(fd, new Uint8Array(new Uint16Array(n).fill(one).buffer));
      continue;
    }
    for (let done = 0; done < n; ) {
      const k = Math.min(POOL, n - done);
      const at = Math.floor(rnd() * POOL);
      writeSync(fd, new Uint8Array(pool.buffer, at * 2, k * 2));
      done += k;
    }
  }
  closeSync(fd);
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const parent = process.argv[2];
  if (!parent) {
    console.error("usage: node --import tsx scripts/smol-model.ts OUT_PARENT_DIR");
    process.exit(2);
  }
  const dir = join(parent, "smol-360m-random");
  console.log(existsSync(join(dir, "model.safetensors")) ? dir : makeSmolModel(parent));
}
