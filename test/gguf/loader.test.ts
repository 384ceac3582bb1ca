// The GGUF reader's validation (one-line ModelFileErrors naming the file) and the model loader's handling
// of quantized tensors: Q8_0/Q4_0 handed over pre-quantized when the backend can take them, K-quants
// dequantized with a log line.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { Buf, Weight } from "../../src/backends/backend.ts";
import { CpuBackend } from "../../src/backends/cpu/cpu-backend.ts";
import { ReferenceBackend } from "../../src/backends/reference/reference-backend.ts";
import { hostF32 } from "../../src/formats/dtype.ts";
import { prepareGguf } from "../../src/formats/gguf/export.ts";
import { GgufFile, isGgufFile } from "../../src/formats/gguf/reader.ts";
import { GgmlType, GgufValueType } from "../../src/formats/gguf/types.ts";
import { GgufWriter } from "../../src/formats/gguf/writer.ts";
import { ModelFileError } from "../../src/formats/model-file-error.ts";
import { dequantize, type QuantizedMatrix } from "../../src/formats/quant.ts";
import { loadModel } from "../../src/models/model.ts";
import { readRefFile } from "../../src/models/validate.ts";
import { INT16_ACT_LOGITS_TOL, withPanelActivations } from "../backends/conformance.ts";
import { argmax, ggufOf, kl, modelDir, promptLogits, tempDir } from "./helpers.ts";

const opts = { maxTokens: 64, numBlocks: 8, blockSize: 16, log: () => {} };

/** A small valid file: an i32 array first, a few scalars, an F32 [2, 16] and a Q8_0 [1, 32] tensor. */
function smallFile(extra: (w: GgufWriter) => void = () => {}): Uint8Array {
  const w = new GgufWriter();
  w.i32Array("test.array", [1, 2, 3]);
  w.string("test.name", "abc");
  w.u32("test.count", 7);
  extra(w);
  w.tensor({ name: "t0.weight", type: GgmlType.F32, shape: [2, 16], byteLength: 128, data: () => new Uint8Array(128) });
  w.tensor({ name: "t1.weight", type: GgmlType.Q8_0, shape: [1, 32], byteLength: 34, data: () => new Uint8Array(34) });
  return w.toBytes();
}

const u64At = (b: Uint8Array, at: number, v: bigint) => new DataView(b.buffer, b.byteOffset).setBigUint64(at, v, true);
const u32At = (b: Uint8Array, at: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(at, v, true);
/** Offset of the first byte after the string `s` (its bytes, found in the header). */
function after(b: Uint8Array, s: string): number {
  const needle = new TextEncoder().encode(s);
  outer: for (let i = 0; i + needle.length <= b.length; i++) {
    for (let j = 0; j < needle.length; j++) if (b[i + j] !== needle[j]) continue outer;
    return i + needle.length;
  }
  throw new Error(`"${s}" not found`);
}

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => GgufFile.fromBytes(bytes, "bad.gguf"),
    (e: unknown) => {
      assert.ok(e instanceof ModelFileError, `not a ModelFileError: ${e}`);
      assert.match(e.message, /^bad\.gguf: /);
      assert.ok(!e.message.includes("\n"), "message is one line");
      assert.match(e.message, pattern);
      return true;
    },
  );
}

test("a valid file parses: metadata types, tensor directory, data", () => {
  const f = GgufFile.fromBytes(smallFile(), "ok.gguf");
  assert.equal(f.version, 3);
  assert.deepEqual(Array.from(f.numberArray("test.array") ?? []), [1, 2, 3]);
  assert.equal(f.string("test.name"), "abc");
  assert.equal(f.uint("test.count"), 7);
  assert.deepEqual(f.tensor("t0.weight").shape, [2, 16]);
  assert.equal(f.tensor("t1.weight").offset % 32, 0);
  assert.equal(f.readTensorBytes("t1.weight").length, 34);
  assert.ok(f.stats.maxAllocBytes <= f.size);
  assert.throws(() => f.string("test.count"), /must be a string \(it is u32\)/);
  // Version 2 has the same little-endian layout.
  const v2 = smallFile();
  u32At(v2, 4, 2);
  assert.equal(GgufFile.fromBytes(v2, "v2.gguf").version, 2);
});

test("malformed files fail with one line naming the file and the problem", () => {
  const ok = smallFile();
  const mut = (fn: (b: Uint8Array) => void) => {
    const b = ok.slice();
    fn(b);
    return b;
  };
  rejects(
    mut((b) => (b[0] = 0x58)),
    /not a GGUF file: magic is "XGUF"/,
  );
  rejects(
    mut((b) => u32At(b, 4, 1)),
    /version 1 is not supported/,
  );
  rejects(
    mut((b) => u32At(b, 4, 4)),
    /unsupported GGUF version 4/,
  );
  rejects(
    mut((b) => u32At(b, 4, 0x03000000)),
    /big-endian/,
  );
  rejects(ok.slice(0, 30), /truncated/);
  rejects(ok.slice(0, 12), /too short/);
  rejects(
    mut((b) => u64At(b, 8, 1n << 40n)),
    /tensor count \d+ .* absurd count/,
  );
  rejects(
    mut((b) => u64At(b, 16, 1n << 62n)),
    /metadata count .* absurd count/,
  );
  rejects(
    mut((b) => u64At(b, 24, 1n << 33n)),
    /metadata key #0 length .* absurd count/,
  );
  // "test.array": key, u32 type, u32 item type, u64 count.
  const arrayCount = after(ok, "test.array") + 8;
  rejects(
    mut((b) => u64At(b, arrayCount, 1n << 50n)),
    /length of array "test.array" .* absurd count/,
  );
  rejects(
    mut((b) => u32At(b, arrayCount - 4, GgufValueType.ARRAY)),
    /nested arrays/,
  );
  rejects(
    mut((b) => u32At(b, arrayCount - 4, 99)),
    /invalid array item type 99/,
  );
  const dup = smallFile((w) => w.u32("test.dupe", 1));
  dup.set(new TextEncoder().encode("test.name"), after(dup, "test.dupe") - 9);
  rejects(dup, /duplicate metadata key "test.name"/);
  // Tensor info of "t0.weight": name, u32 n_dims, u64 ne[2], u32 type, u64 offset.
  const t0 = after(ok, "t0.weight");
  rejects(
    mut((b) => u32At(b, t0, 7)),
    /invalid number of dimensions 7/,
  );
  rejects(
    mut((b) => u32At(b, t0 + 20, 77)),
    /tensor "t0.weight": unknown ggml type 77/,
  );
  rejects(
    mut((b) => u32At(b, t0 + 20, GgmlType.Q8_0)),
    /row length 16 is not a multiple of the Q8_0 block size 32/,
  );
  rejects(
    mut((b) => u64At(b, t0 + 4, 1n << 60n)),
    /shape .* more than the whole file|absurd/,
  );
  const t1 = after(ok, "t1.weight");
  rejects(
    mut((b) => u64At(b, t1 + 24, 8n)),
    /offset 8 is not a multiple of the alignment 32/,
  );
  rejects(
    mut((b) => u64At(b, t1 + 24, 1n << 20n)),
    /runs past the end of the file/,
  );
  rejects(
    mut((b) => u64At(b, t1 + 24, 0n)),
    /overlaps tensor "t0.weight"/,
  );
  rejects(ok.slice(0, ok.length - 40), /"t1.weight": data .* runs past the end/);
  rejects(
    smallFile((w) => w.u32("general.alignment", 24)),
    /"general.alignment" 24 is not a power of two/,
  );
  rejects(
    smallFile((w) => w.string("general.alignment", "x")),
    /"general.alignment" must be a u32/,
  );
});

test("files without a llama-family architecture or with missing tensors are refused by name", async () => {
  const dir = tempDir();
  const phi = join(dir, "phi.gguf");
  writeFileSync(
    phi,
    smallFile((w) => w.string("general.architecture", "phi3")),
  );
  assert.ok(isGgufFile(phi));
  assert.throws(
    () => loadModel(phi, new ReferenceBackend(), opts),
    (e: unknown) => {
      assert.ok(e instanceof ModelFileError);
      assert.match(
        e.message,
        /phi\.gguf: unsupported GGUF architecture "phi3" \(supported: llama, mistral, qwen2, qwen3, gemma\)/,
      );
      return true;
    },
  );
  // A valid model with one tensor renamed.
  const { writer, close } = await prepareGguf(modelDir("arch-qwen2"), "f16", () => {});
  const bytes = writer.toBytes();
  close();
  bytes.set(new TextEncoder().encode("blk.1.attn_x.weight"), after(bytes, "blk.1.attn_k.weight") - 19);
  const broken = join(dir, "broken.gguf");
  writeFileSync(broken, bytes);
  assert.throws(
    () => loadModel(broken, new ReferenceBackend(), opts),
    /broken\.gguf: tensor "blk\.1\.attn_k\.weight" \(model\.layers\.1\.self_attn\.k_proj\.weight\) not found/,
  );
});

/** The reference backend plus the optional pre-quantized entry point, counting its use. */
class QuantReference extends ReferenceBackend {
  calls = 0;
  kinds = new Set<string>();
  /** panels: quantize int8/int4 matmuls' activations as the CPU panels on AVX512-VNNI do (conformance.ts). */
  constructor(private readonly panels = false) {
    super();
  }
  override matmul(out: Buf, x: Buf, w: Weight, bias: Weight | null, rows: number): void {
    super.matmul(out, this.panels ? withPanelActivations(this, x, w, rows) : x, w, bias, rows);
  }
  weightQuantized(m: QuantizedMatrix): Weight {
    this.calls++;
    this.kinds.add(m.kind);
    return this.weight(hostF32(dequantize(m), [m.rows, m.cols]), m.kind);
  }
}

test("Q8_0/Q4_0 matrices reach a backend with weightQuantized pre-quantized, with the same logits", async () => {
  for (const type of ["q8_0", "q4_0"] as const) {
    const path = await ggufOf("arch-llama3-rope", type);
    const quant = new QuantReference();
    const a = loadModel(path, quant, opts);
    // 2 layers × (qkv, o, gate_up, down) + the tied embedding.
    assert.equal(quant.calls, 9, type);
    assert.deepEqual([...quant.kinds], type === "q8_0" ? ["int8"] : ["int4", "int8"]);
    const lines: string[] = [];
    const b = loadModel(path, new ReferenceBackend(), { ...opts, log: (l) => lines.push(l) });
    assert.ok(
      lines.some((l) => /takes no pre-quantized weights/.test(l)),
      "the fallback is logged",
    );
    const ids = readRefFile("test/fixtures/refs/arch-llama3-rope.json").cases[0].prompt_ids;
    assert.deepEqual(promptLogits(a.graph, ids), promptLogits(b.graph, ids));
  }
});

test("on the native CPU backend Q8_0/Q4_0 load without a float round trip and match the reference", async (t) => {
  const loaded = CpuBackend.tryLoad({ threads: 2 });
  if ("error" in loaded) return t.skip(loaded.error);
  const ids = readRefFile("test/fixtures/refs/arch-llama3-rope.json").cases[0].prompt_ids;
  for (const type of ["q8_0", "q4_0"] as const) {
    const path = await ggufOf("arch-llama3-rope", type);
    const lines: string[] = [];
    const cpu = loadModel(path, loaded.backend, { ...opts, log: (l) => lines.push(l) });
    assert.ok(!lines.some((l) => /pre-quantized/.test(l)), lines.join("\n"));
    assert.equal(cpu.graph.weights.layers[0].qkv.storage, type === "q8_0" ? "int8" : "int4");
    const ref = loadModel(path, new QuantReference(loaded.backend.quantPanels), opts);
    const a = promptLogits(cpu.graph, ids);
    const b = promptLogits(ref.graph, ids);
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    // the AVX-512 int8 GEMV quantizes activations to int16 (INT16_ACT_LOGITS_TOL), the int8/int4 panels on
    // AVX512-VNNI to int8 codes (mirrored by the reference)
    assert.ok(maxDiff < INT16_ACT_LOGITS_TOL, `${type}: max |Δ| ${maxDiff}`);
  }
  loaded.backend.dispose();
});

test("Q4_K and Q6_K tensors load (dequantized, logged) and stay close to the HF model", async () => {
  // tiny-llama's down projections have rows of 1024 values (whole 256-blocks): alternate Q4_K and Q6_K.
  const typeFor = (name: string, shape: readonly number[], chosen: number) => {
    const m = /layers\.(\d+)\.mlp\.down_proj/.exec(name);
    if (!m || shape[1] % 256 !== 0) return chosen;
    return Number(m[1]) % 2 === 0 ? GgmlType.Q4_K : GgmlType.Q6_K;
  };
  const { writer, close } = await prepareGguf(modelDir("tiny-llama"), "q8_0", () => {}, typeFor);
  const path = join(tempDir(), "tiny-k.gguf");
  writeFileSync(path, writer.toBytes());
  close();
  const file = GgufFile.open(path);
  assert.equal(file.tensor("blk.0.ffn_down.weight").typeInfo.name, "Q4_K");
  assert.equal(file.tensor("blk.1.ffn_down.weight").typeInfo.name, "Q6_K");
  file.close();
  const lines: string[] = [];
  const k = loadModel(path, new ReferenceBackend(), { ...opts, log: (l) => lines.push(l) });
  assert.ok(lines.some((l) => /Q4_K tensors are dequantized at load/.test(l)));
  assert.ok(lines.some((l) => /Q6_K tensors are dequantized at load/.test(l)));
  assert.equal(k.graph.weights.layers[0].down.storage, "f16");
  const hf = loadModel(modelDir("tiny-llama"), new ReferenceBackend(), opts);
  const ids = readRefFile("test/fixtures/refs/tiny-llama.json").cases[0].prompt_ids;
  const a = promptLogits(hf.graph, ids);
  const b = promptLogits(k.graph, ids);
  const V = hf.config.vocabSize;
  for (let t = 0; t < ids.length; t++) {
    const ra = a.subarray(t * V, (t + 1) * V);
    const rb = b.subarray(t * V, (t + 1) * V);
    assert.ok(kl(ra, rb) < 0.05, `position ${t}: KL ${kl(ra, rb)}`);
    assert.equal(argmax(rb), argmax(ra));
  }
});
