/**
 * The llama-family forward pass, driven by `ModelConfig`, expressed in Backend ops.
 *
 * Per layer (Llama form; Gemma 3 adds the bracketed norms):
 *
 *   n = norm_in(h)                      ┐ fused as addRmsNorm with the previous residual add
 *   qkv = n·Wqkvᵀ (+b); [q/k norm]; rope(q, k); write k, v to the paged cache
 *   a = attention(q, cache)·Woᵀ; [a = post_attn_norm(a)]
 *   h += a; n = norm_ffn(h)             ← addRmsNorm
 *   m = (act(n·Wgateᵀ) ⊙ n·Wupᵀ)·Wdownᵀ; [m = post_ffn_norm(m)]
 *   h += m                              ← folded into the next layer's addRmsNorm
 *
 * Buffers are allocated once for `maxTokens` rows; a forward pass allocates nothing except when the
 * number of logit rows exceeds every earlier request (then the logits buffer grows once).
 */
import type { AttentionParams, Backend, Buf, KvDType, KvLayer, RopeParams, StepMeta } from "../backends/backend.ts";
import type { ModelConfig } from "./config.ts";
import { ropeTable } from "./rope.ts";
import type { ModelWeights } from "./weights.ts";

export interface GraphOptions {
  /** Most tokens in one forward pass (the scheduler's max_num_batched_tokens). */
  maxTokens: number;
  numBlocks: number;
  blockSize: number;
  kvDtype?: KvDType;
}

export class LlamaGraph {
  readonly kv: KvLayer[];
  readonly #hidden: Buf;
  readonly #normed: Buf;
  readonly #qkv: Buf;
  readonly #attn: Buf;
  readonly #proj: Buf;
  readonly #gateUp: Buf;
  readonly #act: Buf;
  #gathered: Buf;
  #logitsBuf: Buf;
  #logits: Float32Array;
  /** Per layer: q and k rotated by one rope call (their heads are adjacent in a qkv row and share the table). */
  readonly #qkRopes: RopeParams[];
  readonly #attnParams: AttentionParams[];
  readonly #qDim: number;
  readonly #kvDim: number;

  constructor(
    readonly cfg: ModelConfig,
    readonly weights: ModelWeights,
    readonly backend: Backend,
    readonly opts: GraphOptions,
  ) {
    const { hiddenSize, numHeads, numKvHeads, headDim, intermediateSize } = cfg;
    const T = opts.maxTokens;
    this.#qDim = numHeads * headDim;
    this.#kvDim = numKvHeads * headDim;
    this.#hidden = backend.buffer(T * hiddenSize);
    this.#normed = backend.buffer(T * hiddenSize);
    this.#qkv = backend.buffer(T * (this.#qDim + 2 * this.#kvDim));
    this.#attn = backend.buffer(T * this.#qDim);
    this.#proj = backend.buffer(T * hiddenSize);
    this.#gateUp = backend.buffer(T * 2 * intermediateSize);
    this.#act = backend.buffer(T * intermediateSize);
    this.#gathered = backend.buffer(hiddenSize);
    this.#logitsBuf = backend.buffer(cfg.vocabSize);
    this.#logits = new Float32Array(cfg.vocabSize);
    this.kv = cfg.layers.map(() =>
      backend.kvLayer(opts.numBlocks, opts.blockSize, numKvHeads, headDim, opts.kvDtype ?? "f32"),
    );
    this.#qkRopes = cfg.layers.map((l) => {
      const table = ropeTable(l.rope, headDim);
      return {
        numHeads: numHeads + numKvHeads,
        headDim,
        rotaryDim: table.rotaryDim,
        invFreq: table.invFreq,
        attentionFactor: table.attentionFactor,
      };
    });
    this.#attnParams = cfg.layers.map((l) => ({
      numHeads,
      numKvHeads,
      headDim,
      scale: cfg.attnScale,
      slidingWindow: l.slidingWindow,
      softcap: cfg.attnLogitSoftcap,
    }));
  }

  /**
   * Runs the model over the step's tokens and returns the logits of the rows in `logitRows`
   * ([logitRows.length, vocab], a view into a buffer reused by the next call).
   */
  forward(meta: StepMeta, logitRows: Int32Array): Float32Array {
    this.#logitsOnBackend(meta, logitRows);
    const out = this.#logits.subarray(0, logitRows.length * this.cfg.vocabSize);
    this.backend.read(this.#logitsBuf, out);
    const cap = this.cfg.finalLogitSoftcap;
    if (cap > 0) for (let i = 0; i < out.length; i++) out[i] = cap * Math.tanh(out[i] / cap);
    return out;
  }

  /** Whether forwardArgmax is available: the backend has argmaxRows and no final softcap can make ties. */
  get canArgmax(): boolean {
    return this.backend.argmaxRows !== undefined && !(this.cfg.finalLogitSoftcap > 0);
  }

  /** A forward pass for greedy rows: out[i] = argmax of the logits of row logitRows[i], taken on the backend. */
  forwardArgmax(meta: StepMeta, logitRows: Int32Array, out: Int32Array): void {
    if (!this.canArgmax) throw new Error("forwardArgmax: the backend has no argmaxRows (or the model softcaps logits)");
    this.#logitsOnBackend(meta, logitRows);
    this.backend.argmaxRows!(this.#logitsBuf, logitRows.length, this.cfg.vocabSize, out);
  }

  /** The layers, the final norm of the rows `logitRows` lists and the lm head, into #logitsBuf. */
  #logitsOnBackend(meta: StepMeta, logitRows: Int32Array): void {
    const { cfg, weights: W, backend: B } = this;
    const T = meta.numTokens;
    if (T > this.opts.maxTokens) throw new Error(`step has ${T} tokens, more than maxTokens ${this.opts.maxTokens}`);
    const hid = cfg.hiddenSize;
    const eps = cfg.rmsNormEps;
    const plusOne = cfg.traits.normPlusOne;
    const stride = this.#qDim + 2 * this.#kvDim;
    B.beginStep(meta);
    B.embed(this.#hidden, W.embed, cfg.traits.scaleEmbeddings ? Math.fround(Math.sqrt(hid)) : 1);
    B.rmsNorm(this.#normed, this.#hidden, W.layers[0].inputNorm, T, hid, eps, plusOne);
    for (let l = 0; l < cfg.numLayers; l++) {
      const L = W.layers[l];
      B.matmul(this.#qkv, this.#normed, L.qkv, L.qkvBias, T);
      if (L.qNorm && L.kNorm) {
        B.headNorm(this.#qkv, T, stride, 0, cfg.numHeads, cfg.headDim, L.qNorm, eps, plusOne);
        B.headNorm(this.#qkv, T, stride, this.#qDim, cfg.numKvHeads, cfg.headDim, L.kNorm, eps, plusOne);
      }
      B.rope(this.#qkv, T, stride, 0, this.#qkRopes[l]);
      B.writeKv(this.kv[l], this.#qkv, stride, this.#qDim, this.#qDim + this.#kvDim);
      B.attention(this.#attn, this.#qkv, stride, this.kv[l], this.#attnParams[l]);
      B.matmul(this.#proj, this.#attn, L.o, null, T);
      if (L.postAttnNorm) B.rmsNorm(this.#proj, this.#proj, L.postAttnNorm, T, hid, eps, plusOne);
      B.addRmsNorm(this.#normed, this.#hidden, this.#proj, L.preFfnNorm, T, hid, eps, plusOne);
      B.matmul(this.#gateUp, this.#normed, L.gateUp, null, T);
      B.gatedAct(this.#act, this.#gateUp, T, cfg.intermediateSize, cfg.hiddenAct);
      B.matmul(this.#proj, this.#act, L.down, null, T);
      if (L.postFfnNorm) B.rmsNorm(this.#proj, this.#proj, L.postFfnNorm, T, hid, eps, plusOne);
      const nextNorm = l + 1 < cfg.numLayers ? W.layers[l + 1].inputNorm : W.finalNorm;
      B.addRmsNorm(this.#normed, this.#hidden, this.#proj, nextNorm, T, hid, eps, plusOne);
    }
    const n = logitRows.length;
    this.#ensureLogitRows(n);
    B.gatherRows(this.#gathered, this.#normed, logitRows, hid);
    B.matmul(this.#logitsBuf, this.#gathered, W.lmHead, null, n);
  }

  /** Copy-on-write of KV blocks across all layers. */
  copyBlocks(src: Int32Array, dst: Int32Array): void {
    if (src.length) this.backend.copyBlocks(this.kv, src, dst);
  }

  #ensureLogitRows(n: number): void {
    const V = this.cfg.vocabSize;
    if (this.#logitsBuf.size >= n * V) return;
    const rows = Math.max(n, 2 * (this.#logitsBuf.size / V));
    this.#gathered = this.backend.buffer(rows * this.cfg.hiddenSize);
    this.#logitsBuf = this.backend.buffer(rows * V);
    this.#logits = new Float32Array(rows * V);
  }
}
