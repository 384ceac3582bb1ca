/** KV pool sizing from device memory (src/backends/cuda/kv-memory.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  estimateActivationBytes,
  estimateWeightBytes,
  kvBytesPerBlock,
  planKvMemory,
} from "../../src/backends/cuda/kv-memory.ts";

test("bytes per block: K and V of every layer, int8 with one f32 scale per vector", () => {
  // Llama 3.2 1B: 16 layers, 8 KV heads × 64, blocks of 16 tokens
  assert.equal(kvBytesPerBlock(16, 8, 64, 16, "bf16"), 2 * 16 * 8 * 64 * 2 * 16);
  assert.equal(kvBytesPerBlock(16, 8, 64, 16, "f32"), 2 * 16 * 8 * 64 * 4 * 16);
  assert.equal(kvBytesPerBlock(2, 2, 64, 16, "int8"), 2 * 2 * (16 * 2 * 64 + 16 * 2 * 4));
});

test("blocks = (free × utilization − weights − activations − reserve) / bytes per block", () => {
  const GiB = 2 ** 30;
  const p = planKvMemory({
    freeBytes: 80 * GiB,
    utilization: 0.9,
    weightBytes: 2.5 * GiB,
    activationBytes: 1.5 * GiB,
    bytesPerBlock: 2 * 2 ** 20,
    reserveBytes: 0,
  });
  assert.equal(p.budgetBytes, Math.floor(80 * GiB * 0.9 - 4 * GiB));
  assert.equal(p.numBlocks, Math.floor(p.budgetBytes / (2 * 2 ** 20)));
  assert.match(p.explain, /KV cache: 80\.00 GiB free × 0\.9 − weights 2\.50 GiB/);
});

test("no room: zero blocks, not a negative count; bad utilization is an error", () => {
  const p = planKvMemory({
    freeBytes: 1e9,
    utilization: 0.5,
    weightBytes: 2e9,
    activationBytes: 0,
    bytesPerBlock: 1e6,
  });
  assert.equal(p.numBlocks, 0);
  assert.throws(
    () => planKvMemory({ freeBytes: 1, utilization: 1.5, weightBytes: 0, activationBytes: 0, bytesPerBlock: 1 }),
    /gpu-memory-utilization must be in \(0, 1\]/,
  );
});

test("activation estimate grows with the token budget and covers the logits rows", () => {
  const shape = {
    hiddenSize: 2048,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 64,
    intermediateSize: 8192,
    vocabSize: 128256,
    maxTokens: 2048,
    maxSeqs: 256,
  };
  const a = estimateActivationBytes(shape);
  const b = estimateActivationBytes({ ...shape, maxTokens: 4096 });
  assert.ok(b > a);
  assert.ok(a > 4 * 256 * 128256, "holds the logits of every sequence");
  assert.ok(a < 2 ** 30, `${a}`);
});

test("weight bytes: Llama-3.2-1B in bf16 is about 2.47 GB; int4 about a third of that", () => {
  const cfg = {
    vocabSize: 128256,
    hiddenSize: 2048,
    intermediateSize: 8192,
    numLayers: 16,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 64,
    tieWordEmbeddings: true,
  };
  const bf16 = estimateWeightBytes(cfg, "bf16");
  // 1.236e9 parameters × 2 bytes, plus f32 norms
  assert.ok(Math.abs(bf16 - 2 * 1.2358e9) < 2e6, `${bf16}`);
  const int4 = estimateWeightBytes(cfg, "int4");
  assert.ok(int4 < 0.4 * bf16 && int4 > 0.35 * bf16, `${int4}`);
  assert.equal(estimateWeightBytes({ ...cfg, tieWordEmbeddings: false }, "bf16") - bf16, 2 * 128256 * 2048);
});
