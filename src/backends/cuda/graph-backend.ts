/**
 * CUDA graphs for decode steps, transparent to the llama graph (src/models/graph.ts): a Backend decorator
 * that records the layer loop of a decode step once per padded batch size and replays it afterwards.
 *
 * How the TS graph triggers replay: it does nothing special. LlamaGraph.forward calls
 *
 *   beginStep(meta) → embed → [layer ops …] → gatherRows → matmul(lm head) → read (or argmaxRows)
 *
 * and this decorator treats embed … (everything before the first "boundary" op: gatherRows, read,
 * argmaxRows, write, beginStep, copyBlocks, allocation) as the captured region. For a pure decode step (every sequence adds
 * one token) of n ≤ max sequences it pads the step to the capture size B ≥ n (dummy sequences of length 1
 * at position 0: token 0, no KV write (slot -1), attention over slot 0 of block 0; their rows are never
 * read), passes rows = B to every op in the region, and
 *
 *   first step at (model, B):   runs the region eagerly in graph mode          (warm-up: scratch sized)
 *   second step:                captures the region, then replays it            (native beginCapture/endCapture)
 *   every later step:           replays the graph; the region's op calls are no-ops
 *
 * The graph reads the step's tokens, positions, slots, lengths and block tables from the device metadata
 * buffer that beginStep refreshes before the replay, and its attention launch is planned for contexts up
 * to maxModelLen, so one graph serves every step of that batch size. A replayed step must make the same
 * op calls as the captured one (checked by count); anything else is a bug and throws. Other steps
 * (prefill, mixed, speculative, larger batches) run eagerly and untouched.
 */
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
import { captureSizes, paddedBatch } from "./capture-sizes.ts";

/** What the decorated backend must offer (CudaBackend does; tests use a fake). */
export interface GraphCapable extends Backend {
  /** >0: plan attention for contexts up to this length and use graph-mode scratch; 0: off. */
  setGraphMode(maxSeqLen: number): void;
  beginCapture(): void;
  endCapture(key: number): void;
  abortCapture(): void;
  replayGraph(key: number): void;
  hasGraph(key: number): boolean;
}

export interface GraphBackendOptions {
  /** Longest context a captured step may have (the engine's max_model_len). */
  maxModelLen: number;
  /** Largest batch to capture; must not exceed the graph's maxTokens (its buffers' rows). */
  maxBatch: number;
  /** Candidate capture sizes (default DEFAULT_CAPTURE_SIZES). */
  sizes?: readonly number[];
}

export interface GraphStats {
  eagerSteps: number;
  warmups: number;
  captures: number;
  replays: number;
}

type Mode = "eager" | "pending" | "warming" | "capturing" | "replaying";

interface Entry {
  key: number;
  state: "warm" | "captured";
  /** Ops in the region when it was warmed/captured. */
  ops: number;
}

export class CudaGraphBackend implements Backend {
  readonly name: string;
  readonly sizes: number[];
  readonly stats: GraphStats = { eagerSteps: 0, warmups: 0, captures: 0, replays: 0 };
  readonly #inner: GraphCapable;
  /** Backend.argmaxRows, offered only when the decorated backend offers it; a boundary op (after the lm head). */
  readonly argmaxRows?: (x: Buf, rows: number, cols: number, out: Int32Array) => void;
  readonly #maxModelLen: number;
  readonly #entries = new Map<Weight, Map<number, Entry>>();
  #nextKey = 1;
  #mode: Mode = "eager";
  #B = 0;
  #entry: Entry | null = null;
  #ops = 0;
  #meta: StepMeta | null = null;
  // padded step arrays (reused)
  #tok = new Int32Array(0);
  #pos = new Int32Array(0);
  #slot = new Int32Array(0);
  #qs = new Int32Array(0);
  #lens = new Int32Array(0);
  #bt = new Int32Array(0);

  constructor(inner: GraphCapable, opts: GraphBackendOptions) {
    this.#inner = inner;
    this.name = inner.name;
    this.#maxModelLen = opts.maxModelLen;
    this.sizes = captureSizes(opts.maxBatch, opts.sizes);
    const argmax = inner.argmaxRows?.bind(inner);
    if (argmax)
      this.argmaxRows = (x, rows, cols, out) => {
        this.#boundary();
        argmax(x, rows, cols, out);
      };
  }

  /** The decorated backend. */
  get inner(): GraphCapable {
    return this.#inner;
  }

  describe(): string {
    const s = this.sizes;
    return `${this.#inner.describe()}, CUDA graphs for decode batches ${s.length ? `${s[0]}…${s.at(-1)}` : "(none)"}`;
  }

  // ---- region control ---------------------------------------------------------------------------------

  /** A pure decode step that fits a capture size and the graph's context limit. */
  #eligible(m: StepMeta): number | null {
    const n = m.numSeqs;
    if (n < 1 || m.numTokens !== n || m.maxBlocksPerSeq < 1) return null;
    for (let s = 0; s < n; s++) {
      if (m.queryStart[s + 1] - m.queryStart[s] !== 1 || m.seqLens[s] > this.#maxModelLen) return null;
    }
    return paddedBatch(n, this.sizes);
  }

  #pad(m: StepMeta, B: number): StepMeta {
    const n = m.numSeqs;
    const mb = m.maxBlocksPerSeq;
    if (this.#tok.length < B) {
      this.#tok = new Int32Array(B);
      this.#pos = new Int32Array(B);
      this.#slot = new Int32Array(B);
      this.#qs = new Int32Array(B + 1);
      this.#lens = new Int32Array(B);
    }
    if (this.#bt.length < B * mb) this.#bt = new Int32Array(B * mb);
    this.#tok.set(m.tokenIds.subarray(0, n));
    this.#pos.set(m.positions.subarray(0, n));
    this.#slot.set(m.slotMapping.subarray(0, n));
    this.#qs.set(m.queryStart.subarray(0, n + 1));
    this.#lens.set(m.seqLens.subarray(0, n));
    this.#bt.set(m.blockTables.subarray(0, n * mb));
    for (let i = n; i < B; i++) {
      this.#tok[i] = 0;
      this.#pos[i] = 0;
      this.#slot[i] = -1;
      this.#qs[i + 1] = i + 1;
      this.#lens[i] = 1;
      this.#bt[i * mb] = 0;
    }
    return {
      numTokens: B,
      tokenIds: this.#tok.subarray(0, B),
      positions: this.#pos.subarray(0, B),
      slotMapping: this.#slot.subarray(0, B),
      numSeqs: B,
      queryStart: this.#qs.subarray(0, B + 1),
      seqLens: this.#lens.subarray(0, B),
      blockTables: this.#bt.subarray(0, B * mb),
      maxBlocksPerSeq: mb,
    };
  }

  /** First op of the region: decide warm-up, capture or replay for (table, B). */
  #enter(table: Weight): void {
    let perModel = this.#entries.get(table);
    if (!perModel) this.#entries.set(table, (perModel = new Map()));
    let e = perModel.get(this.#B);
    if (e?.state === "captured" && !this.#inner.hasGraph(e.key)) e.state = "warm"; // dropped natively
    if (e?.state === "captured") {
      this.#mode = "replaying";
      this.#entry = e;
      this.#ops = 0;
      this.#inner.replayGraph(e.key);
      this.stats.replays++;
      return;
    }
    if (!e) perModel.set(this.#B, (e = { key: this.#nextKey++, state: "warm", ops: -1 }));
    this.#entry = e;
    this.#ops = 0;
    this.#inner.setGraphMode(this.#maxModelLen);
    if (e.ops < 0) {
      this.#mode = "warming";
      this.stats.warmups++;
    } else {
      this.#mode = "capturing";
      try {
        this.#inner.beginCapture();
      } catch (err) {
        this.#inner.setGraphMode(0);
        this.#mode = "eager";
        throw err;
      }
    }
  }

  /** A boundary op ends the region. */
  #leave(): void {
    const mode = this.#mode;
    const e = this.#entry;
    this.#mode = "eager";
    this.#entry = null;
    if (mode === "pending") {
      // The step made no region op (e.g. not a LlamaGraph): run it with the real metadata.
      if (this.#meta) this.#inner.beginStep(this.#meta);
      return;
    }
    if (!e) return;
    if (mode === "warming") {
      this.#inner.setGraphMode(0);
      e.ops = this.#ops;
    } else if (mode === "capturing") {
      try {
        this.#inner.endCapture(e.key);
      } finally {
        this.#inner.setGraphMode(0);
      }
      if (this.#ops !== e.ops) e.ops = this.#ops;
      e.state = "captured";
      this.stats.captures++;
      this.#inner.replayGraph(e.key);
      this.stats.replays++;
    } else if (mode === "replaying" && this.#ops !== e.ops) {
      const captured = e.ops;
      e.state = "warm";
      e.ops = -1;
      throw new Error(
        `CUDA graph replay: this step made ${this.#ops} region ops, the captured one ${captured}; the graph was dropped`,
      );
    }
  }

  /** Runs a region op: skipped while replaying, with rows = B while warming/capturing. */
  #op(run: (rows: number | null) => void, firstTable?: Weight): void {
    if (this.#mode === "pending") {
      if (!firstTable) {
        // The region must start with embed; anything else runs eagerly with the real metadata.
        this.#leave();
        run(null);
        return;
      }
      this.#enter(firstTable);
    }
    switch (this.#mode) {
      case "eager":
        run(null);
        return;
      case "replaying":
        this.#ops++;
        return;
      default:
        this.#ops++;
        try {
          run(this.#B);
        } catch (err) {
          this.#abort();
          throw err;
        }
    }
  }

  #abort(): void {
    if (this.#mode === "capturing") this.#inner.abortCapture();
    this.#inner.setGraphMode(0);
    if (this.#entry) {
      this.#entry.state = "warm";
      this.#entry.ops = -1;
    }
    this.#mode = "eager";
    this.#entry = null;
  }

  #boundary(): void {
    if (this.#mode !== "eager") this.#leave();
  }

  // ---- Backend ------------------------------------------------------------------------------------------

  beginStep(meta: StepMeta): void {
    this.#boundary();
    const B = this.#eligible(meta);
    if (B === null) {
      this.stats.eagerSteps++;
      this.#inner.beginStep(meta);
      return;
    }
    this.#B = B;
    this.#meta = meta;
    this.#mode = "pending";
    this.#inner.beginStep(B === meta.numSeqs ? meta : this.#pad(meta, B));
  }

  embed(out: Buf, table: Weight, scale: number): void {
    this.#op(() => this.#inner.embed(out, table, scale), table);
  }
  rmsNorm(out: Buf, x: Buf, w: Weight, rows: number, dim: number, eps: number, plusOne: boolean): void {
    this.#op((B) => this.#inner.rmsNorm(out, x, w, B ?? rows, dim, eps, plusOne));
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
    this.#op((B) => this.#inner.addRmsNorm(out, residual, x, w, B ?? rows, dim, eps, plusOne));
  }
  matmul(out: Buf, x: Buf, w: Weight, bias: Weight | null, rows: number): void {
    this.#op((B) => this.#inner.matmul(out, x, w, bias, B ?? rows));
  }
  add(a: Buf, b: Buf, n: number): void {
    this.#op((B) => {
      if (B === null) return this.#inner.add(a, b, n);
      const rows = this.#meta?.numTokens ?? 0;
      if (rows === 0 || n % rows !== 0)
        throw new Error(`add(${n}) inside a CUDA graph region is not a whole number of rows`);
      this.#inner.add(a, b, (n / rows) * B);
    });
  }
  rope(x: Buf, rows: number, rowStride: number, offset: number, p: RopeParams): void {
    this.#op((B) => this.#inner.rope(x, B ?? rows, rowStride, offset, p));
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
    this.#op((B) => this.#inner.headNorm(x, B ?? rows, rowStride, offset, numHeads, headDim, w, eps, plusOne));
  }
  gatedAct(out: Buf, gateUp: Buf, rows: number, inter: number, act: Activation): void {
    this.#op((B) => this.#inner.gatedAct(out, gateUp, B ?? rows, inter, act));
  }
  writeKv(kv: KvLayer, qkv: Buf, rowStride: number, kOffset: number, vOffset: number): void {
    this.#op(() => this.#inner.writeKv(kv, qkv, rowStride, kOffset, vOffset));
  }
  attention(out: Buf, qkv: Buf, rowStride: number, kv: KvLayer, p: AttentionParams): void {
    this.#op(() => this.#inner.attention(out, qkv, rowStride, kv, p));
  }

  gatherRows(out: Buf, x: Buf, rowIdx: Int32Array, dim: number): void {
    this.#boundary();
    this.#inner.gatherRows(out, x, rowIdx, dim);
  }
  copyBlocks(layers: readonly KvLayer[], src: Int32Array, dst: Int32Array): void {
    this.#boundary();
    this.#inner.copyBlocks(layers, src, dst);
  }
  read(buf: Buf, out: Float32Array): void {
    this.#boundary();
    this.#inner.read(buf, out);
  }
  write(buf: Buf, data: Float32Array): void {
    this.#boundary();
    this.#inner.write(buf, data);
  }
  weight(t: HostTensor, storage?: StorageDType): Weight {
    this.#boundary();
    return this.#inner.weight(t, storage);
  }
  buffer(size: number): Buf {
    this.#boundary();
    return this.#inner.buffer(size);
  }
  kvLayer(numBlocks: number, blockSize: number, numKvHeads: number, headDim: number, dtype: KvDType): KvLayer {
    this.#boundary();
    return this.#inner.kvLayer(numBlocks, blockSize, numKvHeads, headDim, dtype);
  }
  dispose(): void {
    if (this.#mode === "capturing") this.#abort();
    this.#mode = "eager";
    this.#entries.clear();
    this.#inner.dispose();
  }
}
