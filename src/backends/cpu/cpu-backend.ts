/**
 * The native CPU backend: the Backend ops run in a C++ Node-API addon (native/cpu, built by
 * `node scripts/build-native.mjs` into build/Release/loom_cpu.node).
 *
 * - Kernels are compiled per ISA level: scalar, avx2 (AVX2+FMA+F16C), avx512 (F/BW/VL/DQ) and amx
 *   (avx512 + AMX-BF16 tile GEMM). The best one the CPU (and OS) supports is picked at load; `isa` or
 *   LOOM_CPU_ISA=scalar|avx2|avx512|amx forces another (the tests run every available one).
 * - A persistent thread pool (default os.availableParallelism() threads; the JS thread is worker 0)
 *   runs every op as a static-chunked parallel-for whose chunks idle threads may steal, so a descheduled
 *   thread never stalls an op. Helpers spin ~150 µs between ops, then sleep on a futex. Once done with
 *   their share of a GEMV, helpers prefetch the matrix the next GEMV read last time (a decode step repeats
 *   its order) until the next op arrives, so weights keep streaming while the caller runs the small ops.
 * - Weights, activation buffers and KV pools live in native 64-byte-aligned memory (weights packed into 32 MB
 *   chunks on transparent huge pages: native/cpu/weight_arena.h); JS holds small handles (ids; a
 *   FinalizationRegistry frees dropped ones). Ops pass only numbers (plus the step's
 *   Int32Arrays, copied once by beginStep), so a forward pass allocates nothing in JS.
 * - Weight storage: f32, f16, bf16, int8, int4 (src/formats/quant.ts is the spec), rows padded to a
 *   multiple of 32 columns; an int8/int4 row keeps its scales right after its codes, so a GEMV reads one
 *   sequential range per row (separate scale arrays: 4–6% slower batch-1 GEMVs), and int8 scales are f16
 *   as in Q8_0 (1.0625 bytes per weight instead of 1.125 with f32: 1.05–1.06× faster batch-1 GEMVs).
 * - Matmul: rows ≤ 4 (8 on avx512/amx) → GEMV: each weight row streamed once (a thread reads its rows as up to 8
 *   interleaved sequential streams, which the hardware prefetchers follow), weights dequantized in registers (int4
 *   scale and min applied once per group; bf16 split into even/odd lanes with one shift + one AND; int8
 *   on avx512/amx: one vpmaddwd per group of 32 against int16-quantized activations). More rows → GEMM:
 *   avx2/avx512 dequantize a panel of weight rows to f32 once and reuse it from cache for every tile of
 *   rows (broadcast-FMA micro-kernel); amx multiplies bf16 tiles for bf16/f16/int8/int4 weights (f32 weights
 *   take the avx512 GEMM); avx512 on CPUs with AVX512-BF16 (Zen 4, Cooper Lake) reads bf16 weights in place
 *   with vdpbf16ps (native/cpu/bf16_dot.inc).
 * - int8 and int4 on avx512 CPUs with AVX512-VNNI (Zen 4, Ice Lake): the weights are stored in 16-row panels (a
 *   vector lane per weight row) and one kernel does the GEMV and the GEMM, a group's products summed exactly by
 *   vpdpbusd against int8 activation codes, so a row's output is the same alone and in any batch
 *   (native/cpu/quant_panels.inc).
 *
 * Accuracy choices (all within the conformance tolerances, test/backends/conformance.ts):
 * - With f32, f16 and bf16 weights activations are never rounded to bf16 or quantized to int8: bf16 × bf16
 *   products (what AMX and AVX512-BF16 multiply) would cost ~0.4% per element — far from "same as the
 *   reference up to accumulation order". avx2/avx512 do the matmul arithmetic in f32 (weights widened in
 *   registers), except the int8-weight GEMV on avx512/amx without the panels: it quantizes each group of 32
 *   activations to int16 with its own scale (error ≤ 1.5e-5 of the group's largest value, ~250× below the
 *   int8 weights' own rounding), which halves its vector work so batch-1 decode keeps up with memory.
 * - The int8/int4 panels quantize each group of 32 activations to int8 codes: two planes for int8 weights,
 *   x ≈ s·(256 q1 + q2), as precise as int16 codes; one for int4, x ≈ s·q1 (~8× finer than int4's own
 *   rounding: tiny-llama's int4 mean KL against f32 9.2e-2 → 9.5e-2, for a 1.5× faster int4 GEMM).
 * - The AVX512-BF16 GEMM splits each activation into x = hi + mid (~2⁻¹⁷ of each value, as amx below) and
 *   multiplies both with the bf16 weights: bf16 `npm run validate:refs` max |Δ| 6.2e-5 → 2.1e-4 (tolerance
 *   1e-3), for a 1.2× faster GEMM at 64 rows.
 * - amx splits each activation into bf16 terms (x = hi + mid, ~2⁻¹⁷ of each value: ~1e-5 of the output
 *   scale; hi + mid + lo for f16 weights) and multiplies them with the exact bf16 / f16 (hi + lo) weights.
 * - int8/int4 weights on amx, past the GEMV rows (prefill, batched decode): W8A16 in bf16 like GPU
 *   weight-only kernels — the dequantized weights x̂ and the activations both rounded to bf16, one tile
 *   product per pair, 2× faster than keeping f32-level activations and folding every group's product into
 *   f32. Measured cost (`npm run validate:refs`, KL against f32): tiny-llama int8 mean KL 4.2e-4 → 5.7e-4,
 *   top-1 99.2% unchanged; int4 unchanged. Decode (GEMV) multiplies the exact x̂. See amx_gemm.inc.
 */

/**
 * On the amx ISA, matmuls of at least this many rows (past the GEMV's 8) with int8/int4 weights multiply
 * bf16(activation) × bf16(x̂) (above); the tests' oracles round the same way from here on.
 */
export const AMX_QUANT_BF16_MIN_ROWS = 9;

import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import type { QuantizedMatrix } from "../../formats/quant.ts";
import type { QuantizedWeightSink } from "../../models/weights.ts";
import type {
  Activation,
  AttentionParams,
  Backend,
  Buf,
  HostTensor,
  KvDType,
  KvLayer,
  RopeParams,
  StepMeta,
  StorageDType,
  Weight,
} from "../backend.ts";
import type { NativeHandleOps } from "../native-addon.ts";
import { weightLayout } from "../weight-layout.ts";

export type CpuIsa = "scalar" | "avx2" | "avx512" | "amx";

export interface CpuBackendOptions {
  /** Worker threads including the calling thread (default: os.availableParallelism()). */
  threads?: number;
  /** Force a kernel set (default: LOOM_CPU_ISA, else the best this CPU supports). */
  isa?: CpuIsa;
  /**
   * Another build of the addon (an absolute path to a loom_cpu.node) instead of build/Release: two builds
   * side by side in one process, for paired benchmarks (scripts/bench-ab.ts).
   */
  addonPath?: string;
}

/** The addon's surface (native/cpu/addon.cc). */
interface NativeCpu extends NativeHandleOps {
  isa(): CpuIsa;
  threads(): number;
  beginStep(
    numTokens: number,
    tokenIds: Int32Array,
    positions: Int32Array,
    slotMapping: Int32Array,
    numSeqs: number,
    queryStart: Int32Array,
    seqLens: Int32Array,
    blockTables: Int32Array,
    maxBlocksPerSeq: number,
  ): void;
  rope(
    x: number,
    rows: number,
    rowStride: number,
    offset: number,
    numHeads: number,
    headDim: number,
    rotaryDim: number,
    invFreq: Float32Array,
    attentionFactor: number,
  ): void;
  attention(
    out: number,
    qkv: number,
    rowStride: number,
    kv: number,
    numHeads: number,
    numKvHeads: number,
    headDim: number,
    scale: number,
    window: number,
    softcap: number,
  ): void;
  copyBlocks(kv: number, src: Int32Array, dst: Int32Array): void;
  argmaxRows(x: number, rows: number, cols: number, out: Int32Array): void;
  probeBandwidth(bytes: number, reps: number): Float64Array;
  setIdlePrefetch(on: boolean): void;
  setQuantPanels(on: boolean): void;
  quantPanels(): boolean;
  setBf16Dot(on: boolean): void;
  weightChunks(): number;
  idlePrefetches(): number;
}

interface NativeModule {
  NativeCpu: new (threads: number, isa: string) => NativeCpu;
  supportedIsas(): CpuIsa[];
}

const ADDON_PATH = "../../../build/Release/loom_cpu.node";
const loaded = new Map<string, NativeModule | { error: string }>();

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}

/** Loads an addon build once (default: build/Release); an error (one line) when it is missing or cannot load. */
function loadAddon(path = ADDON_PATH): NativeModule | { error: string } {
  let mod = loaded.get(path);
  if (mod) return mod;
  try {
    mod = createRequire(import.meta.url)(path) as NativeModule;
  } catch (e) {
    const code = (e as { code?: string }).code;
    mod = {
      error:
        code === "MODULE_NOT_FOUND"
          ? path === ADDON_PATH
            ? "native CPU addon not built (build/Release/loom_cpu.node missing; run `node scripts/build-native.mjs`)"
            : `native CPU addon ${path} not found`
          : `native CPU addon failed to load: ${firstLine(e)}`,
    };
  }
  loaded.set(path, mod);
  return mod;
}

const SRC_DTYPE = { f32: 0, f16: 1, bf16: 2 } as const;
const STORAGE = { f32: 0, f16: 1, bf16: 2, int8: 3, int4: 4 } as const;
const KV_DTYPE = { f32: 0, bf16: 1, f16: 2, int8: 3 } as const;
const ACT = { silu: 0, gelu_tanh: 1 } as const;
const KIND_BUF = 0;
const KIND_WEIGHT = 1;
const KIND_KV = 2;

class CpuBuf implements Buf {
  constructor(
    readonly id: number,
    readonly size: number,
  ) {}
}

class CpuWeight implements Weight {
  constructor(
    readonly id: number,
    readonly shape: readonly number[],
    readonly storage: StorageDType,
    /** Bytes of native storage. */
    readonly bytes: number,
  ) {}
}

class CpuKv implements KvLayer {
  constructor(
    readonly id: number,
    readonly numBlocks: number,
    /** Bytes of native storage (K and V). */
    readonly bytes: number,
  ) {}
}

const id = (x: Buf | Weight | KvLayer) => (x as CpuBuf).id;

export class CpuBackend implements Backend, QuantizedWeightSink {
  readonly name = "cpu";
  readonly isa: CpuIsa;
  readonly threads: number;
  readonly #n: NativeCpu;
  #disposed = false;
  /** Frees the native side of handles that become garbage (held value: kind * 2^32 + id). */
  readonly #registry = new FinalizationRegistry<number>((key) => {
    if (!this.#disposed) this.#n.free(Math.floor(key / 2 ** 32), key % 2 ** 32);
  });

  /** The backend, or a one-line reason why it cannot run here. Never throws. */
  static tryLoad(opts: CpuBackendOptions = {}): { backend: CpuBackend } | { error: string } {
    try {
      return { backend: new CpuBackend(opts) };
    } catch (e) {
      return { error: firstLine(e) };
    }
  }

  /** The kernel sets this CPU and build can run (empty when the addon is not built). */
  static supportedIsas(): CpuIsa[] {
    const mod = loadAddon();
    return "error" in mod ? [] : mod.supportedIsas();
  }

  /** Throws when the addon is missing or the requested ISA is unavailable (prefer tryLoad). */
  constructor(opts: CpuBackendOptions = {}) {
    const mod = loadAddon(opts.addonPath);
    if ("error" in mod) throw new Error(mod.error);
    const threads = Math.max(1, Math.floor(opts.threads ?? availableParallelism()));
    try {
      this.#n = new mod.NativeCpu(threads, opts.isa ?? "");
    } catch (e) {
      const env = process.env.LOOM_CPU_ISA;
      const via = opts.isa ? "" : env ? ` (LOOM_CPU_ISA=${env})` : "";
      throw new Error(`${firstLine(e)}${via}`);
    }
    this.isa = this.#n.isa();
    this.threads = this.#n.threads();
  }

  /**
   * Whether pool helpers prefetch the matrix of the next GEMV (the one that followed it last time) while
   * the caller runs the ops in between (on by default; off only to measure what it gains).
   */
  setIdlePrefetch(on: boolean): void {
    this.#n.setIdlePrefetch(on);
  }

  /**
   * Whether int8/int4 weights loaded from then on go into panels for the AVX512-VNNI kernel, where the build and
   * CPU have it (on by default; off keeps them row-major for the GEMV and f32 panel GEMM of AVX-512 CPUs without
   * VNNI, so that the tests cover both on one machine).
   */
  setQuantPanels(on: boolean): void {
    this.#n.setQuantPanels(on);
  }

  /**
   * Whether bf16 GEMMs (past the GEMV rows) use the AVX512-BF16 kernel where the build and CPU have it (on by
   * default; off: the f32 panel GEMM of AVX-512 CPUs without BF16, so that the tests cover both on one machine).
   */
  setBf16Dot(on: boolean): void {
    this.#n.setBf16Dot(on);
  }

  /**
   * Whether int8/int4 weights loaded now go into panels, whose matmuls quantize each group of 32 activations
   * to int8 codes (int8 weights: two planes, ~int16 precision; int4: one) — the oracle the tests mirror.
   */
  get quantPanels(): boolean {
    return this.#n.quantPanels();
  }

  /** How many chunks of huge pages hold the weights (native/cpu/weight_arena.h; a test hook). */
  get weightChunks(): number {
    return this.#n.weightChunks();
  }

  /** How many times a pool helper has started prefetching the next GEMV's matrix (a test/benchmark hook). */
  get idlePrefetches(): number {
    return this.#n.idlePrefetches();
  }

  describe(): string {
    return this.#n.describe();
  }

  #track<T extends object>(handle: T, kind: number, nativeId: number): T {
    this.#registry.register(handle, kind * 2 ** 32 + nativeId);
    return handle;
  }

  weight(t: HostTensor, storage: StorageDType = "f32"): Weight {
    const { rows, cols, storage: st } = weightLayout(t, storage);
    const wid = this.#n.weight(t.data, SRC_DTYPE[t.dtype], rows, cols, STORAGE[st]);
    return this.#track(new CpuWeight(wid, t.shape, st, this.#n.weightBytes(wid)), KIND_WEIGHT, wid);
  }

  /** An int8/int4 matrix as quant.ts describes it (GGUF Q8_0/Q4_0 repacked losslessly), stored as is. */
  weightQuantized(m: QuantizedMatrix): Weight {
    const wid = this.#n.weightQuantized(STORAGE[m.kind], m.rows, m.cols, m.q, m.scales);
    return this.#track(new CpuWeight(wid, [m.rows, m.cols], m.kind, this.#n.weightBytes(wid)), KIND_WEIGHT, wid);
  }

  buffer(size: number): Buf {
    const bid = this.#n.buffer(size);
    return this.#track(new CpuBuf(bid, size), KIND_BUF, bid);
  }

  write(buf: Buf, data: Float32Array): void {
    this.#n.write(id(buf), data);
  }

  read(buf: Buf, out: Float32Array): void {
    this.#n.read(id(buf), out);
  }

  kvLayer(numBlocks: number, blockSize: number, numKvHeads: number, headDim: number, dtype: KvDType): KvLayer {
    const kid = this.#n.kvLayer(numBlocks, blockSize, numKvHeads, headDim, KV_DTYPE[dtype]);
    return this.#track(new CpuKv(kid, numBlocks, this.#n.kvBytes(kid)), KIND_KV, kid);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#n.dispose();
  }

  beginStep(m: StepMeta): void {
    this.#n.beginStep(
      m.numTokens,
      m.tokenIds,
      m.positions,
      m.slotMapping,
      m.numSeqs,
      m.queryStart,
      m.seqLens,
      m.blockTables,
      m.maxBlocksPerSeq,
    );
  }

  embed(out: Buf, table: Weight, scale: number): void {
    this.#n.embed(id(out), id(table), scale);
  }

  rmsNorm(out: Buf, x: Buf, w: Weight, rows: number, dim: number, eps: number, plusOne: boolean): void {
    this.#n.rmsNorm(id(out), id(x), id(w), rows, dim, eps, plusOne);
  }

  addRmsNorm(
    out: Buf,
    residual: Buf,
    x: Buf,
    w: Weight,
    rows: number,
    dim: number,
    eps: number,
    plusOne: boolean,
  ): void {
    this.#n.addRmsNorm(id(out), id(residual), id(x), id(w), rows, dim, eps, plusOne);
  }

  matmul(out: Buf, x: Buf, w: Weight, bias: Weight | null, rows: number): void {
    this.#n.matmul(id(out), id(x), id(w), bias ? id(bias) : -1, rows);
  }

  add(a: Buf, b: Buf, n: number): void {
    this.#n.add(id(a), id(b), n);
  }

  rope(x: Buf, rows: number, rowStride: number, offset: number, p: RopeParams): void {
    this.#n.rope(id(x), rows, rowStride, offset, p.numHeads, p.headDim, p.rotaryDim, p.invFreq, p.attentionFactor);
  }

  headNorm(
    x: Buf,
    rows: number,
    rowStride: number,
    offset: number,
    numHeads: number,
    headDim: number,
    w: Weight,
    eps: number,
    plusOne: boolean,
  ): void {
    this.#n.headNorm(id(x), rows, rowStride, offset, numHeads, headDim, id(w), eps, plusOne);
  }

  gatedAct(out: Buf, gateUp: Buf, rows: number, inter: number, act: Activation): void {
    this.#n.gatedAct(id(out), id(gateUp), rows, inter, ACT[act]);
  }

  writeKv(kv: KvLayer, qkv: Buf, rowStride: number, kOffset: number, vOffset: number): void {
    this.#n.writeKv(id(kv), id(qkv), rowStride, kOffset, vOffset);
  }

  attention(out: Buf, qkv: Buf, rowStride: number, kv: KvLayer, p: AttentionParams): void {
    this.#n.attention(
      id(out),
      id(qkv),
      rowStride,
      id(kv),
      p.numHeads,
      p.numKvHeads,
      p.headDim,
      p.scale,
      p.slidingWindow,
      p.softcap,
    );
  }

  argmaxRows(x: Buf, rows: number, cols: number, out: Int32Array): void {
    this.#n.argmaxRows(id(x), rows, cols, out);
  }

  gatherRows(out: Buf, x: Buf, rowIdx: Int32Array, dim: number): void {
    this.#n.gatherRows(id(out), id(x), rowIdx, dim);
  }

  copyBlocks(layers: readonly KvLayer[], src: Int32Array, dst: Int32Array): void {
    for (let i = 0; i < layers.length; i++) this.#n.copyBlocks(id(layers[i]), src, dst);
  }

  /** Multi-threaded streaming read of a `bytes` buffer, GB/s per repetition (benchmark probe). */
  probeBandwidth(bytes: number, reps: number): Float64Array {
    return this.#n.probeBandwidth(bytes, reps);
  }
}
