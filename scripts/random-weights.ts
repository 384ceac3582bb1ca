/**
 * Random-weight llama-family checkpoints for benchmarks (weights need not be meaningful to be timed): the
 * tensor list of a tied-embedding llama, a pool of random bf16 words, tensors tiled from it, and an
 * in-memory checkpoint made from them on read. No side effects on import (bench-gpu.ts is bundled).
 */
import type { HostTensor } from "../src/backends/backend.ts";
import { f32ToBf16 } from "../src/formats/dtype.ts";
import type { SafetensorsModel, TensorInfo } from "../src/formats/safetensors.ts";
import type { ModelConfig } from "../src/models/config.ts";

/** The dimensions random llama-family checkpoints are made from. */
export type LlamaShape = Pick<
  ModelConfig,
  "hiddenSize" | "intermediateSize" | "numLayers" | "numHeads" | "numKvHeads" | "headDim" | "vocabSize"
>;

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

/** A bf16 tensor of `shape` tiled from the pool, from a random offset (values repeat every pool size). */
export function randomBf16Tensor(shape: number[], { pool, size, rnd }: ReturnType<typeof randomBf16Pool>): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Uint16Array(n);
  const off = Math.floor(rnd() * size);
  for (let o = 0; o < n; o += size) out.set(pool.subarray(off, off + Math.min(size, n - o)), o);
  return { dtype: "bf16", shape, data: new Uint8Array(out.buffer) };
}

/** An in-memory checkpoint of `cfg` with random bf16 weights (std ≈ 0.02, norms = 1), made on read. */
export function randomCheckpoint(cfg: ModelConfig): SafetensorsModel {
  const shapes = new Map(llamaTensorShapes(cfg));
  const source = randomBf16Pool(1 << 20);
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
      if (shape.length > 1) return randomBf16Tensor(shape, source);
      const ones = new Uint16Array(shape[0]).fill(0x3f80); // norms: 1.0
      return { dtype: "bf16", shape, data: new Uint8Array(ones.buffer) };
    },
    close() {},
  };
}
