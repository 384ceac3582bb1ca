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
import { f32ToBf16 } from "../src/formats/dtype.ts";
import { llamaTensorShapes, randomBf16Pool } from "./random-weights.ts";

const TINY = fileURLToPath(new URL("../models/tiny-llama", import.meta.url));

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
