// Fuzzing the GGUF loader: 5,000 mutations (bit flips, truncations, overwritten length/count/offset fields,
// random header bytes) of a small but complete model file. The loader — parse, read and decode every
// tensor, map the config, build the tokenizer and encode with it, load the weights and run one forward
// pass — must fail only with ModelFileError, finish every case quickly, and never allocate (while parsing)
// more than the file holds; decoded tensors stay within 32/4.5 floats per byte of tensor data.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { StepMeta } from "../../src/backends/backend.ts";
import { ReferenceBackend } from "../../src/backends/reference/reference-backend.ts";
import { hostBf16 } from "../../src/formats/dtype.ts";
import {
  DECODABLE_TYPES,
  dequantize,
  encodeF16,
  quantizeQ4_0,
  quantizeQ4K,
  quantizeQ6K,
  quantizeQ8_0,
} from "../../src/formats/gguf/blocks.ts";
import { GgufTensorSource } from "../../src/formats/gguf/model-source.ts";
import { GgufFile } from "../../src/formats/gguf/reader.ts";
import { GgmlType, GgufValueType, ggmlBytes, VALUE_TYPE_SIZE } from "../../src/formats/gguf/types.ts";
import { GgufWriter } from "../../src/formats/gguf/writer.ts";
import { ModelFileError } from "../../src/formats/model-file-error.ts";
import { configFromGguf } from "../../src/models/config.ts";
import { LlamaGraph } from "../../src/models/graph.ts";
import { loadWeights } from "../../src/models/weights.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { mulberry32 as rng } from "../helpers/mulberry32.ts";

const ITERATIONS = 5000;

/** A complete little llama GGUF: every tensor type we decode, a gpt2 or SentencePiece tokenizer, a chat template. */
function seedFile(tokenizer: "gpt2" | "llama"): Uint8Array {
  const r = rng(42);
  const H = 32;
  const F = 64;
  const V = 48;
  const w = new GgufWriter();
  w.string("general.architecture", "llama");
  w.string("general.name", "fuzz");
  w.u32("general.file_type", 7);
  w.u32("llama.context_length", 64);
  w.u32("llama.embedding_length", H);
  w.u32("llama.block_count", 1);
  w.u32("llama.feed_forward_length", F);
  w.u32("llama.attention.head_count", 2);
  w.u32("llama.attention.head_count_kv", 1);
  w.f32("llama.rope.freq_base", 10000);
  w.f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
  w.u32("llama.rope.dimension_count", 16);
  const letters = "abcdefghijklmnopqrstuvwxyz".split("");
  if (tokenizer === "gpt2") {
    const tokens = [
      "<|bos|>",
      "<|eos|>",
      "Ġ",
      ...letters,
      "he",
      "ll",
      "hell",
      "hello",
      "Ġw",
      "or",
      "Ġwor",
      "ld",
      "Ġworld",
    ];
    while (tokens.length < V) tokens.push(`<|x${tokens.length}|>`);
    w.string("tokenizer.ggml.model", "gpt2");
    w.string("tokenizer.ggml.pre", "gpt-2");
    w.stringArray("tokenizer.ggml.tokens", tokens);
    w.i32Array(
      "tokenizer.ggml.token_type",
      tokens.map((t) => (t.startsWith("<|") ? 3 : 1)),
    );
    w.stringArray("tokenizer.ggml.merges", ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"]);
  } else {
    const tokens = [
      "<unk>",
      "<s>",
      "</s>",
      "<0x0A>",
      "<0x20>",
      "<0xC3>",
      "<0xA9>",
      "▁",
      ...letters,
      "▁h",
      "he",
      "▁he",
      "ll",
      "▁hell",
      "▁hello",
    ];
    while (tokens.length < V) tokens.push(`▁x${tokens.length}`);
    w.string("tokenizer.ggml.model", "llama");
    w.stringArray("tokenizer.ggml.tokens", tokens);
    w.f32Array(
      "tokenizer.ggml.scores",
      tokens.map((_, i) => -i),
    );
    w.i32Array(
      "tokenizer.ggml.token_type",
      tokens.map((t, i) => (i === 0 ? 2 : i < 3 ? 3 : t.startsWith("<0x") ? 6 : 1)),
    );
    w.bool("tokenizer.ggml.add_space_prefix", true);
  }
  w.u32("tokenizer.ggml.bos_token_id", tokenizer === "gpt2" ? 0 : 1);
  w.u32("tokenizer.ggml.eos_token_id", tokenizer === "gpt2" ? 1 : 2);
  w.bool("tokenizer.ggml.add_bos_token", true);
  w.string("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}");
  w.scalar("test.u64", GgufValueType.UINT64, 123n);
  w.scalar("test.f64", GgufValueType.FLOAT64, 0.5);
  w.array("test.bools", GgufValueType.BOOL, [true, false]);
  const vals = (n: number) => Float32Array.from({ length: n }, () => (r() - 0.5) * 0.2);
  const ones = (n: number) => Float32Array.from({ length: n }, () => 1 + (r() - 0.5) * 0.1);
  const add = (name: string, type: number, shape: number[], values: Float32Array) => {
    const n = values.length;
    const data =
      type === GgmlType.F32
        ? new Uint8Array(values.buffer)
        : type === GgmlType.F16
          ? encodeF16(values)
          : type === GgmlType.BF16
            ? hostBf16(values, [n]).data
            : type === GgmlType.Q8_0
              ? quantizeQ8_0(values, n)
              : type === GgmlType.Q4_0
                ? quantizeQ4_0(values, n)
                : type === GgmlType.Q4_K
                  ? quantizeQ4K(values, n)
                  : quantizeQ6K(values, n);
    w.tensor({ name, type, shape, byteLength: ggmlBytes(type, n), data: () => data });
  };
  add(
    "rope_freqs.weight",
    GgmlType.F32,
    [8],
    Float32Array.from({ length: 8 }, () => 1),
  );
  add("token_embd.weight", GgmlType.F16, [V, H], vals(V * H));
  add("blk.0.attn_norm.weight", GgmlType.F32, [H], ones(H));
  add("blk.0.attn_q.weight", GgmlType.Q8_0, [H, H], vals(H * H));
  add("blk.0.attn_k.weight", GgmlType.Q4_0, [16, H], vals(16 * H));
  add("blk.0.attn_v.weight", GgmlType.BF16, [16, H], vals(16 * H));
  add("blk.0.attn_output.weight", GgmlType.F32, [H, H], vals(H * H));
  add("blk.0.ffn_norm.weight", GgmlType.F32, [H], ones(H));
  add("blk.0.ffn_gate.weight", GgmlType.Q8_0, [F, H], vals(F * H));
  add("blk.0.ffn_up.weight", GgmlType.F16, [F, H], vals(F * H));
  add("blk.0.ffn_down.weight", GgmlType.Q4_0, [H, F], vals(H * F));
  add("output_norm.weight", GgmlType.F32, [H], ones(H));
  add("output.weight", GgmlType.Q8_0, [V, H], vals(V * H));
  add("extra.q4k", GgmlType.Q4_K, [256], vals(256));
  add("extra.q6k", GgmlType.Q6_K, [256], vals(256));
  return w.toBytes();
}

/** Offsets of every count, length, dimension and offset field (u64) and type field (u32) of a valid file. */
function fieldOffsets(b: Uint8Array): { u64: number[]; u32: number[]; headerEnd: number } {
  const dv = new DataView(b.buffer, b.byteOffset);
  const u64: number[] = [8, 16];
  const u32: number[] = [4];
  let p = 24;
  const str = () => {
    u64.push(p);
    const n = Number(dv.getBigUint64(p, true));
    p += 8 + n;
  };
  const nTensors = Number(dv.getBigUint64(8, true));
  const nKv = Number(dv.getBigUint64(16, true));
  const value = (type: number) => {
    if (type === GgufValueType.STRING) str();
    else p += VALUE_TYPE_SIZE[type];
  };
  for (let i = 0; i < nKv; i++) {
    str();
    u32.push(p);
    const type = dv.getUint32(p, true);
    p += 4;
    if (type === GgufValueType.ARRAY) {
      u32.push(p);
      const item = dv.getUint32(p, true);
      u64.push(p + 4);
      const n = Number(dv.getBigUint64(p + 4, true));
      p += 12;
      for (let j = 0; j < n; j++) value(item);
    } else value(type);
  }
  for (let i = 0; i < nTensors; i++) {
    str();
    u32.push(p);
    const dims = dv.getUint32(p, true);
    p += 4;
    for (let d = 0; d < dims; d++, p += 8) u64.push(p);
    u32.push(p);
    p += 4;
    u64.push(p);
    p += 8;
  }
  return { u64, u32, headerEnd: p };
}

/** Everything a user's load does with a file; returns the largest decoded-float count per tensor byte. */
function loadEverything(bytes: Uint8Array): void {
  const file = GgufFile.fromBytes(bytes, "fuzz.gguf");
  assert.ok(
    file.stats.maxAllocBytes <= bytes.length,
    `parser allocated ${file.stats.maxAllocBytes} of ${bytes.length}`,
  );
  for (const t of file.tensors.values()) {
    const raw = file.readTensorBytes(t.name);
    assert.ok(raw.length <= bytes.length);
    if (DECODABLE_TYPES.includes(t.type)) {
      assert.ok(
        t.numElements * 4 <= (raw.length * 32 * 4) / 4.5 + 4,
        `${t.name}: ${t.numElements} floats from ${raw.length} bytes`,
      );
      dequantize(t.type, raw, t.numElements);
    }
  }
  const cfg = configFromGguf(file);
  const tok = Tokenizer.fromGgufFile(file, () => {});
  tok.encode("hello world");
  const src = new GgufTensorSource(file, cfg.numHeads, cfg.numKvHeads, () => {});
  const backend = new ReferenceBackend();
  const weights = loadWeights(cfg, src, backend, undefined, () => {});
  const graph = new LlamaGraph(cfg, weights, backend, { maxTokens: 4, numBlocks: 1, blockSize: 4 });
  const ids = [0, Math.min(5, cfg.vocabSize - 1)];
  const step: StepMeta = {
    numTokens: 2,
    tokenIds: Int32Array.from(ids),
    positions: Int32Array.of(0, 1),
    slotMapping: Int32Array.of(0, 1),
    numSeqs: 1,
    queryStart: Int32Array.of(0, 2),
    seqLens: Int32Array.of(2),
    blockTables: Int32Array.of(0),
    maxBlocksPerSeq: 1,
  };
  graph.forward(step, Int32Array.of(1));
}

test(`the GGUF loader survives ${ITERATIONS} mutated files with ModelFileError only`, { timeout: 300_000 }, () => {
  // Even iterations mutate the file with a gpt2 tokenizer, odd ones the SentencePiece one.
  const seeds = [seedFile("gpt2"), seedFile("llama")].map((bytes) => ({ bytes, ...fieldOffsets(bytes) }));
  for (const s of seeds) loadEverything(s.bytes); // the unmutated files load
  const r = rng(2024);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const big = [
    0n,
    1n,
    2n,
    31n,
    32n,
    255n,
    1n << 31n,
    (1n << 32n) - 1n,
    1n << 32n,
    1n << 53n,
    1n << 63n,
    (1n << 64n) - 1n,
  ];
  const outcomes = { ok: 0, modelFileError: 0 };
  const hist = new Map<string, number>();
  let slowest = 0;
  for (let it = 0; it < ITERATIONS; it++) {
    const { bytes: seed, u64, u32, headerEnd } = seeds[it % 2];
    const b = seed.slice();
    const dv = new DataView(b.buffer);
    const kind = r();
    let what: string;
    let file = b;
    if (kind < 0.35) {
      const flips = 1 + Math.floor(r() * 8);
      for (let i = 0; i < flips; i++) {
        const at = r() < 0.8 ? Math.floor(r() * headerEnd) : Math.floor(r() * b.length);
        b[at] ^= 1 << Math.floor(r() * 8);
      }
      what = `${flips} bit flips`;
    } else if (kind < 0.55) {
      const len = r() < 0.7 ? Math.floor(r() * headerEnd) : Math.floor(r() * b.length);
      file = b.subarray(0, len);
      what = `truncated to ${len}`;
    } else if (kind < 0.85) {
      const at = pick(u64);
      const old = dv.getBigUint64(at, true);
      const choices = [...big, BigInt(b.length), BigInt(b.length + 1), old + 1n, old > 0n ? old - 1n : 0n, old * 2n];
      const v = pick(choices) & ((1n << 64n) - 1n);
      dv.setBigUint64(at, v, true);
      what = `u64 field at ${at}: ${old} → ${v}`;
    } else if (kind < 0.93) {
      const at = pick(u32);
      const v = pick([0, 1, 7, 8, 9, 12, 13, 30, 31, 99, 0x7fffffff, 0xffffffff]);
      dv.setUint32(at, v, true);
      what = `u32 field at ${at} → ${v}`;
    } else {
      const at = Math.floor(r() * (headerEnd - 8));
      for (let i = 0; i < 8; i++) b[at + i] = r() < 0.5 ? 0xff : Math.floor(r() * 256);
      what = `8 random bytes at ${at}`;
    }
    const t0 = performance.now();
    try {
      loadEverything(file);
      outcomes.ok++;
    } catch (e) {
      if (!(e instanceof ModelFileError)) {
        assert.fail(`iteration ${it} (${what}): ${(e as Error)?.stack ?? e}`);
      }
      assert.ok(!e.message.includes("\n"), `iteration ${it} (${what}): multi-line message: ${e.message}`);
      assert.ok(e.message.startsWith("fuzz.gguf: "), `iteration ${it}: message does not name the file: ${e.message}`);
      outcomes.modelFileError++;
      // FUZZ_HIST=1 prints which checks fired (numbers folded), to see what the mutations reach.
      const check = e.message.replace(/[0-9]+/g, "N").slice(11, 70);
      hist.set(check, (hist.get(check) ?? 0) + 1);
    }
    const ms = performance.now() - t0;
    slowest = Math.max(slowest, ms);
    assert.ok(ms < 5000, `iteration ${it} (${what}) took ${ms.toFixed(0)} ms`);
  }
  if (process.env.FUZZ_HIST) for (const [k, v] of [...hist].sort((a, b) => b[1] - a[1])) console.log(`# ${v} ${k}`);
  console.log(
    `# fuzz: ${outcomes.ok} loaded, ${outcomes.modelFileError} ModelFileError; slowest case ${slowest.toFixed(1)} ms`,
  );
});
