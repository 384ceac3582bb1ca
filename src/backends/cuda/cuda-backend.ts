/**
 * The CUDA backend: the Backend ops run as CUDA kernels from a Node-API addon (native/cuda, built by
 * `node scripts/build-cuda.mjs` into build/cuda/loom_cuda.node when nvcc is found).
 *
 * - Weights live on the device in their storage format (bf16 by default; f32, f16, int8 and int4 with
 *   src/formats/quant.ts's layout and arithmetic), activations are f32 device buffers, KV pools are paged
 *   ([block][slot][kvHead][headDim], f32/bf16/f16/int8).
 * - matmul: bf16 weights with ≥ tensorCoreMinRows rows (default 2) → activations converted to bf16 (one
 *   fused convert+pad kernel) and cuBLAS GemmEx on tensor cores with f32 accumulation and f32 output; other
 *   matmuls of ≤ 8 rows → a GEMV kernel that streams each weight row once and dequantizes in registers (f32
 *   math); the rest (other storages, or bf16 without cuBLAS) → a tiled SIMT kernel, f32 math. On an H200
 *   the GEMV kernel reads a 1B model's bf16 weights at 1.5–4.2 TB/s for one row but falls to 0.4–0.9 TB/s at
 *   eight (it re-reads the activations per weight), while cuBLAS holds 1.1–4.0 TB/s from two rows up
 *   (`bench-gpu.ts --gemv`), hence the default.
 * - attention: decode tokens → split-K paged kernel (the last block of each sequence and KV head merges the
 *   partitions); prefill chunks → flash-style tiled SIMT kernel with online softmax over the block tables.
 *   Both f32 math.
 * - beginStep packs the step's metadata into one int32 buffer (step-pack.ts) and uploads it with one
 *   pinned copy; kernels read tokens, positions, slots, lengths and block tables from it.
 * - Extras beyond Backend: GPU sampling (sampleGreedy, sample), CUDA graph capture/replay (used by
 *   CudaGraphBackend), device memory queries for sizing the KV pool (kv-memory.ts).
 *
 * Accuracy: everything is f32 arithmetic on the stored values except cuBLAS matmuls, whose inputs are
 * rounded to bf16 (relative error ~2⁻⁹ per activation). `tensorCoreMinRows: Infinity` turns those off.
 */

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
import { weightLayout } from "../weight-layout.ts";
import {
  ACT,
  CUBLAS_MODE,
  type DeviceInfo,
  KIND,
  KV_DTYPE,
  loadCudaAddon,
  type NativeCuda,
  SRC_DTYPE,
  STORAGE,
} from "./addon.ts";
import { planDecode } from "./attention-plan.ts";
import {
  checkAttention,
  checkBlockTables,
  checkCapacity,
  checkCopyBlocks,
  checkGather,
  checkHeadNorm,
  checkMatmul,
  checkRope,
  checkRowsArg,
  checkStep,
  checkWriteKv,
} from "./checks.ts";
import type { GraphCapable } from "./graph-backend.ts";
import { type GpuSamplingRow, SamplingArgs } from "./sampling-args.ts";
import { layoutInts, type PackedStep, StepPacker } from "./step-pack.ts";

export interface CudaBackendOptions {
  /** CUDA device ordinal (default 0). */
  device?: number;
  /**
   * "required" (default): fail to load without cuBLAS; "optional": fall back to the SIMT GEMM when
   * cuBLAS is missing; "off": never use it.
   */
  cublas?: "required" | "optional" | "off";
  /**
   * bf16 matmuls of at least this many rows go to cuBLAS (default: $LOOM_CUDA_TC_MIN_ROWS, else 2;
   * Infinity or "inf": never, so every matmul is f32 math).
   */
  tensorCoreMinRows?: number;
}

export interface GpuSampleOptions {
  /** tanh soft-capping of the logits first (Gemma 2's final_logit_softcapping); 0 = off. */
  softcap?: number;
  /** Where to write the ids (default: a new Int32Array). */
  outIds?: Int32Array;
  /** When given, receives each row's raw logprob of its chosen token (log-softmax of the logits). */
  outLogprobs?: Float32Array;
}

class CudaBuf implements Buf {
  constructor(
    readonly id: number,
    readonly size: number,
  ) {}
}

class CudaWeight implements Weight {
  constructor(
    readonly id: number,
    readonly shape: readonly number[],
    readonly storage: StorageDType,
    readonly bytes: number,
  ) {}
}

class CudaKv implements KvLayer {
  constructor(
    readonly id: number,
    readonly numBlocks: number,
    readonly blockSize: number,
    readonly numKvHeads: number,
    readonly headDim: number,
    readonly dtype: KvDType,
    readonly bytes: number,
  ) {}
}

const idOf = (x: Buf | Weight | KvLayer) => (x as CudaBuf).id;
const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split("\n")[0];

export class CudaBackend implements Backend, GraphCapable, QuantizedWeightSink {
  readonly name = "cuda";
  readonly device: number;
  readonly info: DeviceInfo;
  readonly #n: NativeCuda;
  readonly #packer = new StepPacker();
  readonly #sampling = new SamplingArgs();
  readonly #invFreq = new WeakMap<Float32Array, number>();
  #meta: StepMeta | null = null;
  #packed: PackedStep | null = null;
  /** Block-table validity of the current step, per "blockSize:numBlocks" (checked once per step). */
  #checkedTables = new Set<string>();
  #graphMaxLen = 0;
  #capturing = false;
  #disposed = false;
  #weightBytes = 0;
  #kvBytes = 0;
  readonly #registry = new FinalizationRegistry<number>((key) => {
    if (!this.#disposed) this.#n.free(Math.floor(key / 2 ** 32), key % 2 ** 32);
  });

  /** The backend, or a one-line reason why it cannot run here (addon, driver, device, cuBLAS). Never throws. */
  static tryLoad(opts: CudaBackendOptions = {}): { backend: CudaBackend } | { error: string } {
    try {
      return { backend: new CudaBackend(opts) };
    } catch (e) {
      return { error: firstLine(e) };
    }
  }

  /** Throws with the same one-line reasons (prefer tryLoad). */
  constructor(opts: CudaBackendOptions = {}) {
    const mod = loadCudaAddon();
    if ("error" in mod) throw new Error(mod.error);
    this.device = opts.device ?? 0;
    const why = mod.deviceUnavailableReason(this.device);
    if (why) throw new Error(why);
    const env = process.env.LOOM_CUDA_TC_MIN_ROWS;
    const tc = opts.tensorCoreMinRows ?? (env ? (/^inf/i.test(env) ? Number.POSITIVE_INFINITY : Number(env)) : 2);
    if (!(tc >= 0)) throw new Error(`LOOM_CUDA_TC_MIN_ROWS must be a number or "inf", got "${env}"`);
    this.#n = new mod.NativeCuda(
      this.device,
      CUBLAS_MODE[opts.cublas ?? "required"],
      Number.isFinite(tc) ? tc : 2 ** 31,
    );
    this.info = this.#n.deviceInfo();
  }

  describe(): string {
    return this.#n.describe();
  }

  /** Free device memory now (cudaMemGetInfo), bytes. Measure before loading weights to size the KV pool. */
  freeMemoryBytes(): number {
    return this.#n.memInfo()[0];
  }
  totalMemoryBytes(): number {
    return this.#n.memInfo()[1];
  }
  /** Device bytes of the weights / KV pools this backend holds. */
  get weightBytes(): number {
    return this.#weightBytes;
  }
  get kvBytes(): number {
    return this.#kvBytes;
  }
  get hasCublas(): boolean {
    return this.#n.hasCublas();
  }

  #track<T extends object>(handle: T, kind: number, nativeId: number): T {
    this.#registry.register(handle, kind * 2 ** 32 + nativeId);
    return handle;
  }

  weight(t: HostTensor, storage: StorageDType = "f32"): Weight {
    const { rows, cols, storage: st } = weightLayout(t, storage);
    const wid = this.#n.weight(t.data, SRC_DTYPE[t.dtype], rows, cols, STORAGE[st]);
    const bytes = this.#n.weightBytes(wid);
    this.#weightBytes += bytes;
    return this.#track(new CudaWeight(wid, t.shape, st, bytes), KIND.weight, wid);
  }

  /** An int8/int4 matrix as quant.ts describes it, uploaded without a float round trip. */
  weightQuantized(m: QuantizedMatrix): Weight {
    const wid = this.#n.weightQuantized(STORAGE[m.kind], m.rows, m.cols, m.q, m.scales);
    const bytes = this.#n.weightBytes(wid);
    this.#weightBytes += bytes;
    return this.#track(new CudaWeight(wid, [m.rows, m.cols], m.kind, bytes), KIND.weight, wid);
  }

  buffer(size: number): Buf {
    const bid = this.#n.buffer(size);
    return this.#track(new CudaBuf(bid, size), KIND.buffer, bid);
  }

  write(buf: Buf, data: Float32Array): void {
    checkCapacity("write", buf.size, data.length);
    this.#n.write(idOf(buf), data);
  }

  read(buf: Buf, out: Float32Array): void {
    checkCapacity("read", buf.size, out.length);
    this.#n.read(idOf(buf), out);
  }

  kvLayer(numBlocks: number, blockSize: number, numKvHeads: number, headDim: number, dtype: KvDType): KvLayer {
    const kid = this.#n.kvLayer(numBlocks, blockSize, numKvHeads, headDim, KV_DTYPE[dtype]);
    const bytes = this.#n.kvBytes(kid);
    this.#kvBytes += bytes;
    return this.#track(new CudaKv(kid, numBlocks, blockSize, numKvHeads, headDim, dtype, bytes), KIND.kv, kid);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#n.dispose();
  }

  /** Waits until every queued kernel finished (benchmarks; ops never need it). */
  synchronize(): void {
    this.#n.synchronize();
  }

  // ---- step -----------------------------------------------------------------------------------------------

  beginStep(meta: StepMeta): void {
    if (this.#capturing) throw new Error("beginStep() inside a CUDA graph capture");
    checkStep(meta);
    const p = this.#packer.pack(meta);
    if (p.layoutChanged) this.#n.setMetaLayout(layoutInts(this.#packer.layout));
    this.#n.beginStep(this.#packer.buffer, p.ints, p.numTokens, p.numSeqs, p.numDecode, p.numTiles);
    this.#meta = meta;
    this.#packed = p;
    this.#checkedTables.clear();
  }

  get #step(): StepMeta {
    if (!this.#meta) throw new Error("beginStep() was not called");
    return this.#meta;
  }

  embed(out: Buf, table: Weight, scale: number): void {
    const m = this.#step;
    if (table.shape.length !== 2) throw new RangeError(`embed: table must be a matrix, got shape [${table.shape}]`);
    checkCapacity("embed out", out.size, m.numTokens * table.shape[1]);
    this.#n.embed(idOf(out), idOf(table), scale);
  }

  rmsNorm(out: Buf, x: Buf, w: Weight, rows: number, dim: number, eps: number, plusOne: boolean): void {
    checkRowsArg("rmsNorm", rows, dim);
    checkCapacity("rmsNorm out", out.size, rows * dim);
    checkCapacity("rmsNorm x", x.size, rows * dim);
    this.#n.rmsNorm(idOf(out), idOf(x), idOf(w), rows, dim, eps, plusOne);
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
    checkRowsArg("addRmsNorm", rows, dim);
    checkCapacity("addRmsNorm out", out.size, rows * dim);
    checkCapacity("addRmsNorm residual", residual.size, rows * dim);
    checkCapacity("addRmsNorm x", x.size, rows * dim);
    this.#n.addRmsNorm(idOf(out), idOf(residual), idOf(x), idOf(w), rows, dim, eps, plusOne);
  }

  matmul(out: Buf, x: Buf, w: Weight, bias: Weight | null, rows: number): void {
    checkMatmul(out.size, x.size, w.shape, bias ? bias.shape[0] : null, rows);
    this.#n.matmul(idOf(out), idOf(x), idOf(w), bias ? idOf(bias) : -1, rows);
  }

  add(a: Buf, b: Buf, n: number): void {
    checkCapacity("add a", a.size, n);
    checkCapacity("add b", b.size, n);
    this.#n.add(idOf(a), idOf(b), n);
  }

  rope(x: Buf, rows: number, rowStride: number, offset: number, p: RopeParams): void {
    checkRope(p, x.size, rows, rowStride, offset, this.#step.numTokens);
    let c = this.#invFreq.get(p.invFreq);
    if (c === undefined) {
      if (this.#capturing) throw new Error("rope: a new invFreq table inside a CUDA graph capture");
      c = this.#n.constant(p.invFreq);
      this.#invFreq.set(p.invFreq, c);
      this.#track(p.invFreq, KIND.constant, c);
    }
    this.#n.rope(idOf(x), rows, rowStride, offset, p.numHeads, p.headDim, p.rotaryDim, c, p.attentionFactor);
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
    checkHeadNorm(x.size, rows, rowStride, offset, numHeads, headDim, w.shape[0]);
    this.#n.headNorm(idOf(x), rows, rowStride, offset, numHeads, headDim, idOf(w), eps, plusOne);
  }

  gatedAct(out: Buf, gateUp: Buf, rows: number, inter: number, act: Activation): void {
    checkRowsArg("gatedAct", rows, inter);
    checkCapacity("gatedAct out", out.size, rows * inter);
    checkCapacity("gatedAct gateUp", gateUp.size, rows * 2 * inter);
    this.#n.gatedAct(idOf(out), idOf(gateUp), rows, inter, ACT[act]);
  }

  writeKv(kv: KvLayer, qkv: Buf, rowStride: number, kOffset: number, vOffset: number): void {
    const k = kv as CudaKv;
    checkWriteKv(k, qkv.size, rowStride, kOffset, vOffset, this.#step.numTokens);
    this.#n.writeKv(k.id, idOf(qkv), rowStride, kOffset, vOffset);
  }

  attention(out: Buf, qkv: Buf, rowStride: number, kv: KvLayer, p: AttentionParams): void {
    const m = this.#step;
    const k = kv as CudaKv;
    checkAttention(p, k, out.size, qkv.size, rowStride, m.numTokens);
    const key = `${k.blockSize}:${k.numBlocks}`;
    if (!this.#checkedTables.has(key)) {
      checkBlockTables(m, k.blockSize, k.numBlocks);
      this.#checkedTables.add(key);
    }
    const packed = this.#packed!;
    const plan = planDecode({
      numDecode: packed.numDecode,
      numHeads: p.numHeads,
      numKvHeads: p.numKvHeads,
      headDim: p.headDim,
      maxSeqLen: this.#graphMaxLen > 0 ? this.#graphMaxLen : packed.maxDecodeLen,
      smCount: this.info.smCount,
    });
    this.#n.attention(
      idOf(out),
      idOf(qkv),
      rowStride,
      k.id,
      p.numHeads,
      p.numKvHeads,
      p.headDim,
      p.scale,
      p.slidingWindow,
      p.softcap,
      plan.splits,
      plan.partition,
    );
  }

  gatherRows(out: Buf, x: Buf, rowIdx: Int32Array, dim: number): void {
    checkGather(out.size, x.size, rowIdx, dim);
    this.#n.gatherRows(idOf(out), idOf(x), rowIdx, dim);
  }

  copyBlocks(layers: readonly KvLayer[], src: Int32Array, dst: Int32Array): void {
    if (!layers.length || !src.length) return;
    for (const l of layers) checkCopyBlocks(src, dst, l.numBlocks);
    this.#n.copyBlocks(
      Int32Array.from(layers, (l) => idOf(l)),
      src,
      dst,
    );
  }

  // ---- sampling on the GPU ---------------------------------------------------------------------------------

  /**
   * Greedy ids of `rows` rows of `vocab` logits in `logits` (ties → lowest id); only the ids (and, when
   * asked, their raw logprobs) are copied back.
   */
  sampleGreedy(logits: Buf, rows: number, vocab: number, o: GpuSampleOptions = {}): Int32Array {
    checkCapacity("sampleGreedy logits", logits.size, rows * vocab);
    const ids = o.outIds ?? new Int32Array(rows);
    this.#n.sampleGreedy(idOf(logits), rows, vocab, o.softcap ?? 0, ids, o.outLogprobs ?? null);
    return ids;
  }

  /** Backend.argmaxRows: sampleGreedy without a softcap; only the ids come back. */
  argmaxRows(x: Buf, rows: number, cols: number, out: Int32Array): void {
    if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols < 1)
      throw new Error(`argmaxRows: needs rows >= 0 and cols >= 1 (got ${rows}, ${cols})`);
    if (out.length < rows) throw new Error(`argmaxRows: out shorter than rows (${out.length} < ${rows})`);
    if (rows > 0) this.sampleGreedy(x, rows, cols, { outIds: out });
  }

  /** One id per row: temperature → top-k → top-p → min-p → draw with the row's uniform number. */
  sample(logits: Buf, rows: readonly GpuSamplingRow[], vocab: number, o: GpuSampleOptions = {}): Int32Array {
    const n = rows.length;
    checkCapacity("sample logits", logits.size, n * vocab);
    const ids = o.outIds ?? new Int32Array(n);
    if (this.#sampling.pack(rows)) return this.sampleGreedy(logits, n, vocab, { ...o, outIds: ids });
    const s = this.#sampling;
    const params = s.params.length === 4 * n ? s.params : s.params.subarray(0, 4 * n);
    this.#n.sample(idOf(logits), n, vocab, o.softcap ?? 0, params, s.topK, ids, o.outLogprobs ?? null);
    return ids;
  }

  // ---- CUDA graphs (GraphCapable) -------------------------------------------------------------------------

  setGraphMode(maxSeqLen: number): void {
    this.#graphMaxLen = Math.max(0, maxSeqLen);
    this.#n.setGraphMode(maxSeqLen > 0);
  }
  beginCapture(): void {
    this.#n.beginCapture();
    this.#capturing = true;
  }
  endCapture(key: number): void {
    this.#capturing = false;
    this.#n.endCapture(key);
  }
  abortCapture(): void {
    this.#capturing = false;
    this.#n.abortCapture();
  }
  replayGraph(key: number): void {
    this.#n.replay(key);
  }
  hasGraph(key: number): boolean {
    return this.#n.hasGraph(key);
  }
  /** Captured graphs held natively (dropped when memory they use is reallocated). */
  graphCount(): number {
    return this.#n.graphCount();
  }
}
