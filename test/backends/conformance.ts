/**
 * Backend conformance suite (in the spirit of llama.cpp's test-backend-ops): every op of a backend is
 * run on random inputs and awkward shapes and compared with ReferenceBackend.
 *
 * Error metric: max |out − ref| / max |ref| over the op's output (so cancellation near zero in one
 * element does not dominate). Tolerances:
 *
 *   f32 weights / activations ............ 1e-4  (accumulation order and f32-vs-double only)
 *   f16, bf16 weights .................... 1e-4  against the reference given the same weights rounded to
 *                                                 f16/bf16 and decoded to f32 (the only difference is the
 *                                                 order of the f32 accumulation)
 *   int8, int4 weights ................... 1e-4  against the reference given src/formats/quant.ts's
 *                                                 quantize → dequantize of the same weights (for the
 *                                                 CPU AMX GEMM, ≥ 9 rows: those values and the
 *                                                 activations rounded to bf16, as it multiplies them; for
 *                                                 the CPU int8/int4 panels on AVX512-VNNI: the activations
 *                                                 quantized to int8 codes as they are: panelActivations)
 *   (measured maxima over the scalar/avx2/avx512/amx paths: f32 2.4e-6, f16 2.4e-6, bf16 5.1e-6 (the
 *   AVX512-BF16 GEMM, activations as two bf16 terms), int8 8.1e-5 (the row-major AVX-512 GEMV at K = 8200
 *   with 5 outputs, which quantizes activations to int16 per group of 32; 5.5e-7 there for the int8 panels),
 *   int4 1.9e-6 — the AMX GEMM splits activations into bf16 terms)
 *   embed (any storage) .................. exact (dequantization is bit-identical to quant.ts)
 *   norms, rope, activations, add ........ 1e-5
 *   attention, KV f32 .................... 1e-4
 *   attention, KV bf16 / f16 / int8 ...... 1e-4  against the reference given K/V rounded (bf16, f16) or
 *                                                 quantized per (token, head) (int8) as the cache stores them
 *   (measured: norms/rope/activations ≤ 4e-7, attention ≤ 1.3e-6)
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type {
  Backend,
  Buf,
  HostTensor,
  KvDType,
  KvLayer,
  StepMeta,
  StorageDType,
  Weight,
} from "../../src/backends/backend.ts";
import { ReferenceBackend } from "../../src/backends/reference/reference-backend.ts";
import { f16ToF32, f32ToBf16, hostBf16, hostF32, toFloat32 } from "../../src/formats/dtype.ts";
import { f32ToF16, fakeQuantize, QGROUP, quantizeInt8Group } from "../../src/formats/quant.ts";
import { argmaxAt } from "../../src/sampler/sampler.ts";
import { mulberry32 as rng } from "../helpers/mulberry32.ts";

export const TOL = {
  matmul: 1e-4,
  elementwise: 1e-5,
  attention: 1e-4,
} as const;

export type Tolerances = { [K in keyof typeof TOL]: number };

/** What a backend's run of the suite does differently from the defaults. */
export interface ConformanceOptions {
  /** Tolerances that differ from TOL (a tensor-core run's matmul). */
  tol?: Partial<Tolerances>;
  /**
   * From this many rows on, int8/int4 matmuls multiply bf16(x) · bf16(x̂) instead of x · x̂ (the CPU AMX
   * GEMM: native/cpu/amx_gemm.inc); the oracle rounds activations and weights the same way.
   */
  quantGemmBf16FromRows?: number;
  /**
   * int8/int4 matmuls quantize every group of 32 activations to int8 codes first (the CPU panels on
   * AVX512-VNNI: native/cpu/quant_panels.inc); the oracle quantizes them the same way (panelActivations).
   */
  quantPanelActivations?: boolean;
}

/**
 * Whole-model logits (absolute) with int8 / int4 weights against a reference given the same dequantized
 * weights, where the kernels quantize activations per group of 32: to int16 (the AVX-512 int8 GEMV without
 * VNNI: measured up to 1.7e-3 on tiny-llama decode, 1.8e-3 on its prompt, 1.7e-4 on arch-qwen2, against
 * ~2e-5 for f32 kernels; the int8 weights themselves move the logits ~100× more) or to int8 codes (the
 * panels on AVX512-VNNI, mirrored by the reference: 2.1e-3 on the tiny-llama int8 prompt, 5e-6 int4 — an
 * activation's code still flips where the two sides' f32 rounding upstream differs, 2⁻⁸ of a code for int8's
 * second plane, a whole code for int4's, so int4 keeps this tolerance too).
 */
export const INT16_ACT_LOGITS_TOL = 5e-3;

// ------------------------------------------------------------------------------------------------
// helpers
// ------------------------------------------------------------------------------------------------

/** Roughly normal values (sum of 4 uniforms), std ≈ `scale`. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() + r() + r() + r() - 2) * 1.7320508 * scale;
  return out;
}

export function relErr(actual: Float32Array, expected: Float32Array): { err: number; at: number } {
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) maxRef = Math.max(maxRef, Math.abs(expected[i]));
  let err = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i] - expected[i]);
    if (!(e <= err)) {
      err = e;
      at = i;
    }
  }
  return { err: err / Math.max(maxRef, 1e-30), at };
}

const VERBOSE = process.env.LOOM_CONFORMANCE_VERBOSE === "1";

export function assertClose(actual: Float32Array, expected: Float32Array, tol: number, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  const { err, at } = relErr(actual, expected);
  if (VERBOSE) console.log(`conformance ${label}: ${err.toExponential(2)}`);
  assert.ok(
    err <= tol,
    `${label}: relative error ${err.toExponential(2)} > ${tol} (at ${at}: got ${actual[at]}, want ${expected[at]})`,
  );
}

function hostF16(values: Float32Array, shape: readonly number[]): HostTensor {
  const words = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) words[i] = f32ToF16(values[i]);
  return { dtype: "f16", shape, data: new Uint8Array(words.buffer) };
}

const bf16Round = (x: number) => {
  const f = new Float32Array(new Uint32Array([f32ToBf16(x) << 16]).buffer);
  return f[0];
};
const f16Round = (x: number) => f16ToF32(f32ToF16(x));

/**
 * The f32 weight the reference must use so that it multiplies exactly what `storage` stores (with
 * `quantAsBf16`, int8/int4 values rounded to bf16 as the CPU AMX GEMM multiplies them).
 */
export function oracleWeight(t: HostTensor, storage: StorageDType, quantAsBf16 = false): HostTensor {
  const v = toFloat32(t);
  if (t.shape.length < 2 || storage === "f32") return hostF32(v, t.shape);
  const [rows, cols] = [t.shape[0], v.length / t.shape[0]];
  if (storage === "int8" || storage === "int4") {
    const dq = fakeQuantize(v, rows, cols, storage);
    // vcvtne2ps2bf16 flushes f32 denormals (|x| < 2⁻¹²⁶) to zero, then rounds to nearest even
    const panel = (x: number) => (Math.abs(x) < 2 ** -126 ? 0 : bf16Round(x));
    return hostF32(quantAsBf16 ? dq.map(panel) : dq, t.shape);
  }
  const round = storage === "bf16" ? bf16Round : f16Round;
  return hostF32(v.map(round), t.shape);
}

/**
 * The reference, multiplying exactly the values a backend storing `storage` multiplies: weights rounded
 * or dequantized as stored (oracleWeight), and with `quantGemmBf16FromRows` int8/int4 matmuls of that
 * many rows as bf16(x) · bf16(x̂) (embed and smaller matmuls keep x and x̂).
 */
export class StorageReference extends ReferenceBackend {
  private readonly gemmWeights = new WeakMap<Weight, Weight>();
  constructor(private readonly opts: ConformanceOptions = {}) {
    super();
  }
  override weight(t: HostTensor, storage: StorageDType = "f32"): Weight {
    const exact = super.weight(oracleWeight(t, storage), storage);
    if (this.opts.quantGemmBf16FromRows !== undefined && (storage === "int8" || storage === "int4")) {
      this.gemmWeights.set(exact, super.weight(oracleWeight(t, storage, true), storage));
    }
    return exact;
  }
  override matmul(out: Buf, x: Buf, w: Weight, bias: Weight | null, rows: number): void {
    const xq = this.opts.quantPanelActivations ? withPanelActivations(this, x, w, rows) : x;
    if (xq !== x) {
      super.matmul(out, xq, w, bias, rows);
      return;
    }
    const gemm =
      rows >= (this.opts.quantGemmBf16FromRows ?? Number.POSITIVE_INFINITY) ? this.gemmWeights.get(w) : undefined;
    if (!gemm) {
      super.matmul(out, x, w, bias, rows);
      return;
    }
    const xv = new Float32Array(rows * w.shape[1]);
    this.read(x, xv);
    const xr = this.buffer(xv.length);
    this.write(xr, xv.map(bf16Round));
    super.matmul(out, xr, gemm, bias, rows);
  }
}

/** Round half to even, as vcvtps2dq does under the default rounding mode. */
function rint(t: number): number {
  const f = Math.floor(t);
  const d = t - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/**
 * x (rows × K) as native/cpu/quant_panels.inc's qp_prep quantizes it for int8/int4 panels, per group of 32:
 * t = x · fround(127/max|x|), q1 = rint(t); int8 weights add q2 = rint(256 (t − q1)) clamped to int8, so that
 * x̂ = fround(s/256) · (256 q1 + q2) with s = fround(max|x|/127); int4 x̂ = s · q1. A group with a NaN or ±inf
 * gives NaN.
 */
export function panelActivations(x: Float32Array, rows: number, K: number, storage: "int8" | "int4"): Float32Array {
  const out = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < K; g += QGROUP) {
      const end = Math.min(K, g + QGROUP);
      let m = 0;
      for (let k = g; k < end; k++) m = Math.max(m, Math.abs(x[r * K + k]));
      if (!Number.isFinite(m)) {
        out.fill(Number.NaN, r * K + g, r * K + end);
        continue;
      }
      const inv = m > 0 ? Math.fround(127 / m) : 0;
      const s = Math.fround(m / 127);
      for (let k = g; k < end; k++) {
        const t = Math.fround(x[r * K + k] * inv);
        const q1 = Math.max(-128, Math.min(127, rint(t)));
        if (storage === "int4") {
          out[r * K + k] = s * q1;
          continue;
        }
        const q2 = Math.max(-128, Math.min(127, rint(Math.fround(Math.fround(t - q1) * 256))));
        out[r * K + k] = Math.fround(s / 256) * (256 * q1 + q2);
      }
    }
  }
  return out;
}

/**
 * x's rows as the CPU panels quantize them for weight `w` (panelActivations) when it is int8/int4, as a new
 * buffer; x itself for any other storage.
 */
export function withPanelActivations(be: ReferenceBackend, x: Buf, w: Weight, rows: number): Buf {
  if (w.storage !== "int8" && w.storage !== "int4") return x;
  const xv = new Float32Array(rows * w.shape[1]);
  be.read(x, xv);
  const xq = be.buffer(xv.length);
  be.write(xq, panelActivations(xv, rows, w.shape[1], w.storage));
  return xq;
}

/** What the KV cache of `dtype` stores for the K/V parts of qkv rows (f32 values). */
function kvOracle(
  qkv: Float32Array,
  rows: number,
  stride: number,
  kOff: number,
  vOff: number,
  kvHeads: number,
  headDim: number,
  dtype: KvDType,
): Float32Array {
  const out = qkv.slice();
  if (dtype === "f32") return out;
  const q = new Int8Array(headDim);
  for (let r = 0; r < rows; r++) {
    for (const off of [kOff, vOff]) {
      for (let h = 0; h < kvHeads; h++) {
        const base = r * stride + off + h * headDim;
        if (dtype === "int8") {
          const d = quantizeInt8Group(qkv, base, headDim, q, 0);
          for (let i = 0; i < headDim; i++) out[base + i] = Math.fround(q[i] * d);
        } else {
          const round = dtype === "bf16" ? bf16Round : f16Round;
          for (let i = 0; i < headDim; i++) out[base + i] = round(qkv[base + i]);
        }
      }
    }
  }
  return out;
}

/** A pair (backend under test, reference multiplying what the backend stores) with mirrored buffers. */
class Pair {
  readonly ref: StorageReference;
  constructor(
    readonly be: Backend,
    opts: ConformanceOptions,
  ) {
    this.ref = new StorageReference(opts);
  }
  buf(size: number, data?: Float32Array): [Buf, Buf] {
    const a = this.be.buffer(size);
    const b = this.ref.buffer(size);
    if (data) {
      this.be.write(a, data);
      this.ref.write(b, data);
    }
    return [a, b];
  }
  read(pair: [Buf, Buf], n: number): [Float32Array, Float32Array] {
    const a = new Float32Array(n);
    const b = new Float32Array(n);
    this.be.read(pair[0], a);
    this.ref.read(pair[1], b);
    return [a, b];
  }
  beginStep(meta: StepMeta): void {
    this.be.beginStep(meta);
    this.ref.beginStep(meta);
  }
}

/** Step metadata for tokens of several sequences: seq s has cached[s] tokens and adds news[s]. */
export function makeStep(
  seqs: { cached: number; add: number; blocks: number[] }[],
  blockSize: number,
  tokenSeed = 1,
): StepMeta {
  const r = rng(tokenSeed);
  const numTokens = seqs.reduce((a, s) => a + s.add, 0);
  const maxBlocks = Math.max(1, ...seqs.map((s) => s.blocks.length));
  const tokenIds = new Int32Array(numTokens);
  const positions = new Int32Array(numTokens);
  const slotMapping = new Int32Array(numTokens);
  const queryStart = new Int32Array(seqs.length + 1);
  const seqLens = new Int32Array(seqs.length);
  const blockTables = new Int32Array(seqs.length * maxBlocks).fill(-7); // unused entries: garbage
  let t = 0;
  seqs.forEach((s, i) => {
    queryStart[i] = t;
    seqLens[i] = s.cached + s.add;
    if (Math.ceil(seqLens[i] / blockSize) > s.blocks.length) throw new Error("test bug: too few blocks");
    s.blocks.forEach((b, j) => {
      blockTables[i * maxBlocks + j] = b;
    });
    for (let j = 0; j < s.add; j++, t++) {
      const pos = s.cached + j;
      tokenIds[t] = Math.floor(r() * 50);
      positions[t] = pos;
      slotMapping[t] = s.blocks[Math.floor(pos / blockSize)] * blockSize + (pos % blockSize);
    }
  });
  queryStart[seqs.length] = t;
  return {
    numTokens,
    tokenIds,
    positions,
    slotMapping,
    numSeqs: seqs.length,
    queryStart,
    seqLens,
    blockTables,
    maxBlocksPerSeq: maxBlocks,
  };
}

/** A random permutation of 0..n-1 (block ids handed out out of order on purpose). */
function shuffled(n: number, seed: number): number[] {
  const r = rng(seed);
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

// ------------------------------------------------------------------------------------------------
// the suite
// ------------------------------------------------------------------------------------------------

const STORAGES: StorageDType[] = ["f32", "f16", "bf16", "int8", "int4"];
/** [rows, K, N]: GEMV (≤4 rows) and GEMM shapes, K and N off every SIMD width, tails of every tile. */
const MATMUL_SHAPES: [number, number, number][] = [
  [1, 7, 5],
  [1, 33, 65],
  // long rows (a GPU GEMV splits them between warps)
  [1, 4100, 9],
  [1, 8200, 5],
  [2, 64, 33],
  [3, 65, 17],
  [4, 100, 40],
  [5, 33, 65],
  [7, 96, 130],
  [8, 200, 70],
  [9, 64, 19],
  [16, 31, 13],
  [17, 130, 29],
  [33, 256, 100],
  [64, 384, 48],
  [70, 64, 37],
  [2, 4096, 24],
  [20, 4096, 24],
  // rows spanning several ~1 MB chunks of packed activations (each chunk makes its own pass over W)
  [300, 2048, 40],
];

interface AttnCase {
  name: string;
  heads: number;
  kvHeads: number;
  headDim: number;
  blockSize: number;
  /** steps[k][s]: tokens sequence s adds in step k (0: not in that step). */
  steps: number[][];
  window?: number;
  softcap?: number;
  qScale?: number;
}

const ATTN_CASES: AttnCase[] = [
  {
    name: "decode batch, GQA, uneven lengths",
    heads: 4,
    kvHeads: 2,
    headDim: 64,
    blockSize: 16,
    steps: [
      [1, 17, 40],
      [1, 1, 1],
    ],
  },
  {
    name: "MQA, headDim 32",
    heads: 8,
    kvHeads: 1,
    headDim: 32,
    blockSize: 8,
    steps: [
      [5, 9],
      [1, 1],
      [3, 0],
    ],
  },
  {
    name: "chunked prefill over a cached prefix + other seqs",
    heads: 4,
    kvHeads: 2,
    headDim: 64,
    blockSize: 16,
    steps: [
      [20, 0, 7],
      [13, 9, 1],
      [1, 1, 1],
    ],
  },
  {
    name: "block-boundary positions",
    heads: 2,
    kvHeads: 2,
    headDim: 16,
    blockSize: 16,
    steps: [
      [16, 32, 15],
      [1, 1, 1],
      [15, 16, 1],
    ],
  },
  { name: "long sequence > 512 tokens", heads: 2, kvHeads: 1, headDim: 16, blockSize: 32, steps: [[600], [1], [37]] },
  {
    name: "sliding window",
    heads: 4,
    kvHeads: 2,
    headDim: 32,
    blockSize: 8,
    window: 8,
    steps: [
      [50, 3],
      [1, 30],
      [1, 1],
    ],
  },
  {
    name: "sliding window 33 + decode",
    heads: 2,
    kvHeads: 1,
    headDim: 64,
    blockSize: 16,
    window: 33,
    steps: [[70], [1]],
  },
  {
    name: "softcap",
    heads: 4,
    kvHeads: 4,
    headDim: 32,
    blockSize: 16,
    softcap: 20,
    qScale: 8,
    steps: [
      [24, 5],
      [1, 1],
    ],
  },
  { name: "odd headDim 24, one head", heads: 1, kvHeads: 1, headDim: 24, blockSize: 4, steps: [[9], [2]] },
  // decode tiles of ≤ 4 query heads per KV head take the CPU backend's register-blocked decode kernel
  {
    name: "decode, GQA group 4, headDim 128, long contexts",
    heads: 8,
    kvHeads: 2,
    headDim: 128,
    blockSize: 16,
    steps: [
      [100, 37, 1],
      [1, 1, 1],
      [1, 1, 1],
    ],
  },
  {
    name: "decode, GQA group 3, sliding window 40, softcap 30",
    heads: 6,
    kvHeads: 2,
    headDim: 64,
    blockSize: 16,
    window: 40,
    softcap: 30,
    steps: [
      [70, 5],
      [1, 1],
    ],
  },
];

export function runConformance(name: string, makeBackend: () => Backend, opts: ConformanceOptions = {}): void {
  const tol: Tolerances = { ...TOL, ...opts.tol };
  describe(`conformance: ${name}`, () => {
    let be: Backend;
    let P: Pair;
    before(() => {
      be = makeBackend();
      P = new Pair(be, opts);
    });
    after(() => be?.dispose());

    test("matmul: every storage × awkward shapes, with and without bias", () => {
      let seed = 100;
      for (const storage of STORAGES) {
        for (const [rows, K, N] of MATMUL_SHAPES) {
          seed++;
          const wv = randn(N * K, seed, 0.5);
          // a few outliers so quantization groups have uneven ranges
          for (let i = 0; i < wv.length; i += 97) wv[i] *= 6;
          // f16/bf16 storage is tested from matching checkpoints and from f32 (conversion at load)
          const host =
            storage === "bf16" && seed % 2
              ? hostBf16(wv, [N, K])
              : storage === "f16" && seed % 2
                ? hostF16(wv, [N, K])
                : hostF32(wv, [N, K]);
          const w = be.weight(host, storage);
          assert.equal(w.storage, storage);
          const wr = P.ref.weight(host, storage);
          const withBias = seed % 3 === 0;
          const bias = withBias ? randn(N, seed + 7) : null;
          const b = bias ? be.weight(hostF32(bias, [N])) : null;
          const br = bias ? P.ref.weight(hostF32(bias, [N])) : null;
          const x = P.buf(rows * K, randn(rows * K, seed + 1));
          const y = P.buf(rows * N + 3);
          be.matmul(y[0], x[0], w, b, rows);
          P.ref.matmul(y[1], x[1], wr, br, rows);
          const [got, want] = P.read(y, rows * N);
          assertClose(got, want, tol.matmul, `matmul ${storage} rows=${rows} K=${K} N=${N} bias=${withBias}`);
        }
      }
    });

    test("embed: rows of every storage dtype are dequantized exactly", () => {
      for (const storage of STORAGES) {
        for (const [vocab, dim] of [
          [50, 7],
          [50, 33],
          [64, 96],
        ]) {
          const tv = randn(vocab * dim, vocab + dim, 0.3);
          const host = storage === "bf16" ? hostBf16(tv, [vocab, dim]) : hostF32(tv, [vocab, dim]);
          // one constant group (int4 d = 0) on row 3
          for (let j = 0; j < Math.min(dim, QGROUP); j++) tv[3 * dim + j] = 0.25;
          const table = be.weight(host, storage);
          const tableRef = P.ref.weight(oracleWeight(host, storage));
          const meta = makeStep([{ cached: 0, add: 9, blocks: [0] }], 16, dim);
          meta.tokenIds.set([3, 0, 49, 3, 17, 8, 25, 1, 3]);
          P.beginStep(meta);
          const out = P.buf(9 * dim);
          const scale = Math.fround(Math.sqrt(dim));
          be.embed(out[0], table, scale);
          P.ref.embed(out[1], tableRef, scale);
          const [got, want] = P.read(out, 9 * dim);
          assert.deepEqual(got, want, `embed ${storage} [${vocab}, ${dim}]`);
        }
      }
    });

    test("rmsNorm, addRmsNorm (plain and 1+w), in place", () => {
      for (const [rows, dim] of [
        [1, 7],
        [3, 64],
        [17, 65],
        [5, 960],
      ]) {
        for (const plusOne of [false, true]) {
          const seed = rows * 1000 + dim + (plusOne ? 1 : 0);
          const w = randn(dim, seed, 0.3);
          const wb = be.weight(hostF32(w, [dim]));
          const wr = P.ref.weight(hostF32(w, [dim]));
          const x = P.buf(rows * dim, randn(rows * dim, seed + 1, 3));
          const out = P.buf(rows * dim);
          be.rmsNorm(out[0], x[0], wb, rows, dim, 1e-6, plusOne);
          P.ref.rmsNorm(out[1], x[1], wr, rows, dim, 1e-6, plusOne);
          assertClose(...P.read(out, rows * dim), tol.elementwise, `rmsNorm ${rows}x${dim} plusOne=${plusOne}`);
          // in place (out aliases x)
          be.rmsNorm(x[0], x[0], wb, rows, dim, 1e-5, plusOne);
          P.ref.rmsNorm(x[1], x[1], wr, rows, dim, 1e-5, plusOne);
          assertClose(...P.read(x, rows * dim), tol.elementwise, `rmsNorm in place ${rows}x${dim}`);
          // fused residual add + norm
          const res = P.buf(rows * dim, randn(rows * dim, seed + 2, 2));
          const add = P.buf(rows * dim, randn(rows * dim, seed + 3, 2));
          be.addRmsNorm(out[0], res[0], add[0], wb, rows, dim, 1e-6, plusOne);
          P.ref.addRmsNorm(out[1], res[1], add[1], wr, rows, dim, 1e-6, plusOne);
          assertClose(...P.read(out, rows * dim), tol.elementwise, `addRmsNorm out ${rows}x${dim}`);
          assertClose(...P.read(res, rows * dim), tol.elementwise, `addRmsNorm residual ${rows}x${dim}`);
        }
      }
    });

    test("headNorm on q and k heads inside qkv rows", () => {
      for (const [rows, heads, kvHeads, headDim] of [
        [1, 4, 2, 16],
        [5, 3, 1, 64],
        [7, 2, 2, 7],
      ]) {
        const stride = (heads + 2 * kvHeads) * headDim;
        const x = P.buf(rows * stride, randn(rows * stride, rows + headDim, 2));
        for (const plusOne of [false, true]) {
          const w = randn(headDim, headDim, 0.5);
          const wb = be.weight(hostF32(w, [headDim]));
          const wr = P.ref.weight(hostF32(w, [headDim]));
          be.headNorm(x[0], rows, stride, 0, heads, headDim, wb, 1e-6, plusOne);
          P.ref.headNorm(x[1], rows, stride, 0, heads, headDim, wr, 1e-6, plusOne);
          be.headNorm(x[0], rows, stride, heads * headDim, kvHeads, headDim, wb, 1e-6, plusOne);
          P.ref.headNorm(x[1], rows, stride, heads * headDim, kvHeads, headDim, wr, 1e-6, plusOne);
          assertClose(...P.read(x, rows * stride), tol.elementwise, `headNorm rows=${rows} hd=${headDim}`);
        }
      }
    });

    test("rope: full and partial rotary, attention factor, large and block-boundary positions", () => {
      for (const [heads, kvHeads, headDim, rotaryDim, factor] of [
        [4, 2, 64, 64, 1],
        [3, 1, 32, 16, 1],
        [2, 2, 96, 48, 1.25],
        [1, 1, 10, 6, 1],
      ]) {
        const rows = 6;
        const stride = (heads + 2 * kvHeads) * headDim;
        const meta = makeStep([{ cached: 0, add: rows, blocks: [0] }], 16);
        meta.positions.set([0, 1, 15, 16, 511, 70000]);
        P.beginStep(meta);
        const half = rotaryDim / 2;
        const invFreq = new Float32Array(half);
        for (let i = 0; i < half; i++) invFreq[i] = 1 / 10000 ** ((2 * i) / rotaryDim);
        const p = { numHeads: heads, headDim, rotaryDim, invFreq, attentionFactor: factor };
        const pk = { ...p, numHeads: kvHeads };
        const x = P.buf(rows * stride, randn(rows * stride, headDim + rotaryDim));
        be.rope(x[0], rows, stride, 0, p);
        P.ref.rope(x[1], rows, stride, 0, p);
        be.rope(x[0], rows, stride, heads * headDim, pk);
        P.ref.rope(x[1], rows, stride, heads * headDim, pk);
        assertClose(...P.read(x, rows * stride), tol.elementwise, `rope hd=${headDim} rot=${rotaryDim}`);
      }
    });

    test("gatedAct: silu and gelu_tanh, including saturated inputs", () => {
      for (const act of ["silu", "gelu_tanh"] as const) {
        for (const [rows, inter] of [
          [1, 7],
          [3, 33],
          [9, 256],
        ]) {
          const gu = randn(rows * 2 * inter, rows + inter, 4);
          gu[0] = 100;
          gu[1] = -100;
          gu[2] = 0;
          if (inter > 4) gu[3] = -30;
          const g = P.buf(rows * 2 * inter, gu);
          const out = P.buf(rows * inter);
          be.gatedAct(out[0], g[0], rows, inter, act);
          P.ref.gatedAct(out[1], g[1], rows, inter, act);
          assertClose(...P.read(out, rows * inter), tol.elementwise, `gatedAct ${act} ${rows}x${inter}`);
        }
      }
    });

    test("add and gatherRows", () => {
      for (const n of [1, 15, 1000]) {
        const a = P.buf(n, randn(n, n));
        const b = P.buf(n, randn(n, n + 1));
        be.add(a[0], b[0], n);
        P.ref.add(a[1], b[1], n);
        assertClose(...P.read(a, n), tol.elementwise, `add ${n}`);
      }
      const dim = 33;
      const x = P.buf(10 * dim, randn(10 * dim, 5));
      const idx = Int32Array.from([9, 0, 4, 4]);
      const out = P.buf(4 * dim);
      be.gatherRows(out[0], x[0], idx, dim);
      P.ref.gatherRows(out[1], x[1], idx, dim);
      assert.deepEqual(...P.read(out, 4 * dim));
    });

    test("argmaxRows (where offered): the sampler's argmax of every row, ties, NaN and -inf included", (t) => {
      if (!be.argmaxRows) {
        t.skip(`${be.name} has no argmaxRows`);
        return;
      }
      const cases: [string, number, number, (x: Float32Array, cols: number) => void][] = [
        ["one column", 3, 1, () => {}],
        ["ties go to the lowest index", 2, 9, (x, c) => x.fill(9, c + 2, c + 7).fill(9, 1, 4)],
        [
          "a NaN first wins, a NaN later never",
          3,
          7,
          (x, c) => x.fill(Number.NaN, 0, 1).fill(Number.NaN, c + 1, c + 3),
        ],
        ["all -inf", 2, 5, (x) => x.fill(Number.NEGATIVE_INFINITY)],
        ["+inf", 1, 6, (x) => x.fill(Number.POSITIVE_INFINITY, 4, 5)],
        ["many rows of a large vocabulary (threaded)", 40, 4099, () => {}],
      ];
      for (const [label, rows, cols, edit] of cases) {
        const host = randn(rows * cols, rows + cols);
        edit(host, cols);
        const x = be.buffer(rows * cols);
        be.write(x, host);
        const got = new Int32Array(rows);
        be.argmaxRows(x, rows, cols, got);
        const want = Int32Array.from({ length: rows }, (_, r) => argmaxAt(host, r * cols, cols));
        assert.deepEqual(got, want, label);
      }
    });

    for (const kvDtype of ["f32", "bf16", "f16", "int8"] as KvDType[]) {
      test(`writeKv + paged attention, KV ${kvDtype}`, () => {
        for (const c of ATTN_CASES) runAttnCase(P, c, kvDtype, tol);
      });
    }

    test("copyBlocks then attention over the copied blocks (copy-on-write)", () => {
      for (const kvDtype of ["f32", "int8"] as KvDType[]) {
        const heads = 4;
        const kvHeads = 2;
        const headDim = 32;
        const bs = 16;
        const stride = (heads + 2 * kvHeads) * headDim;
        const kv: [KvLayer, KvLayer] = [
          be.kvLayer(12, bs, kvHeads, headDim, kvDtype),
          P.ref.kvLayer(12, bs, kvHeads, headDim, kvDtype),
        ];
        const params = {
          numHeads: heads,
          numKvHeads: kvHeads,
          headDim,
          scale: headDim ** -0.5,
          slidingWindow: 0,
          softcap: 0,
        };
        // seq A: 40 tokens in blocks [5, 2, 7]
        const m1 = makeStep([{ cached: 0, add: 40, blocks: [5, 2, 7] }], bs);
        const q1 = randn(40 * stride, 77);
        stepBoth(P, m1, kv, q1, stride, heads, kvHeads, headDim, kvDtype, params);
        // fork: B shares block 5, gets copies of 2 → 9 and 7 → 3, then decodes one token into block 3
        const src = Int32Array.from([2, 7]);
        const dst = Int32Array.from([9, 3]);
        be.copyBlocks([kv[0]], src, dst);
        P.ref.copyBlocks([kv[1]], src, dst);
        const m2 = makeStep([{ cached: 40, add: 1, blocks: [5, 9, 3] }], bs);
        const out = stepBoth(P, m2, kv, randn(stride, 78), stride, heads, kvHeads, headDim, kvDtype, params);
        assertClose(out[0], out[1], tol.attention, `attention after copyBlocks (KV ${kvDtype})`);
      }
    });
  });
}

/** Writes K/V of the step and runs attention on both backends; returns [got, want]. */
function stepBoth(
  P: Pair,
  meta: StepMeta,
  kv: [KvLayer, KvLayer],
  qkv: Float32Array,
  stride: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  kvDtype: KvDType,
  params: {
    numHeads: number;
    numKvHeads: number;
    headDim: number;
    scale: number;
    slidingWindow: number;
    softcap: number;
  },
): [Float32Array, Float32Array] {
  const T = meta.numTokens;
  const kOff = heads * headDim;
  const vOff = kOff + kvHeads * headDim;
  P.beginStep(meta);
  const a = P.be.buffer(T * stride);
  const b = P.ref.buffer(T * stride);
  P.be.write(a, qkv);
  P.ref.write(b, kvOracle(qkv, T, stride, kOff, vOff, kvHeads, headDim, kvDtype));
  P.be.writeKv(kv[0], a, stride, kOff, vOff);
  P.ref.writeKv(kv[1], b, stride, kOff, vOff);
  const out = P.buf(T * heads * headDim);
  P.be.attention(out[0], a, stride, kv[0], params);
  P.ref.attention(out[1], b, stride, kv[1], params);
  return P.read(out, T * heads * headDim);
}

function runAttnCase(P: Pair, c: AttnCase, kvDtype: KvDType, tol: Tolerances): void {
  const { heads, kvHeads, headDim, blockSize: bs } = c;
  const nSeq = c.steps[0].length;
  const totals = Array.from({ length: nSeq }, (_, s) => c.steps.reduce((a, st) => a + st[s], 0));
  const blocksPer = totals.map((t) => Math.ceil(t / bs));
  const numBlocks = blocksPer.reduce((a, b) => a + b, 0) + 3;
  const perm = shuffled(numBlocks, numBlocks + headDim);
  let next = 0;
  const blocks = blocksPer.map((n) => perm.slice(next, (next += n)));
  const kv: [KvLayer, KvLayer] = [
    P.be.kvLayer(numBlocks, bs, kvHeads, headDim, kvDtype),
    P.ref.kvLayer(numBlocks, bs, kvHeads, headDim, kvDtype),
  ];
  const params = {
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim,
    scale: headDim ** -0.5,
    slidingWindow: c.window ?? 0,
    softcap: c.softcap ?? 0,
  };
  const stride = (heads + 2 * kvHeads) * headDim;
  const cached = new Array(nSeq).fill(0);
  c.steps.forEach((step, k) => {
    const seqs = step.map((add, s) => ({ cached: cached[s], add, blocks: blocks[s] })).filter((s) => s.add > 0);
    const meta = makeStep(seqs, bs, k + 1);
    const qkv = randn(meta.numTokens * stride, 1000 * k + headDim + nSeq);
    if (c.qScale) {
      for (let t = 0; t < meta.numTokens; t++)
        for (let i = 0; i < heads * headDim; i++) qkv[t * stride + i] *= c.qScale;
    }
    const [got, want] = stepBoth(P, meta, kv, qkv, stride, heads, kvHeads, headDim, kvDtype, params);
    assertClose(got, want, tol.attention, `attention "${c.name}" step ${k} (KV ${kvDtype})`);
    step.forEach((add, s) => {
      cached[s] += add;
    });
  });
}
