/**
 * The reference backend: plain TypeScript, float32 math, written to be obviously correct rather than fast.
 * Every faster backend is tested op by op against it (test/backends/conformance.ts).
 */
import { toFloat32 } from "../../formats/dtype.ts";
import { argmaxAt } from "../../sampler/sampler.ts";
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

class RefBuf implements Buf {
  constructor(readonly data: Float32Array) {}
  get size(): number {
    return this.data.length;
  }
}

class RefWeight implements Weight {
  constructor(
    readonly data: Float32Array,
    readonly shape: readonly number[],
    readonly storage: StorageDType,
  ) {}
}

class RefKv implements KvLayer {
  readonly k: Float32Array;
  readonly v: Float32Array;
  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
    readonly numKvHeads: number,
    readonly headDim: number,
  ) {
    this.k = new Float32Array(numBlocks * blockSize * numKvHeads * headDim);
    this.v = new Float32Array(numBlocks * blockSize * numKvHeads * headDim);
  }
}

const d = (b: Buf) => (b as RefBuf).data;
const w = (x: Weight) => (x as RefWeight).data;

export class ReferenceBackend implements Backend {
  readonly name = "reference";
  #meta: StepMeta | null = null;

  describe(): string {
    return "reference (TypeScript, float32)";
  }

  weight(t: HostTensor, storage: StorageDType = "f32"): Weight {
    return new RefWeight(toFloat32(t), t.shape, t.shape.length > 1 ? storage : "f32");
  }
  buffer(size: number): Buf {
    return new RefBuf(new Float32Array(size));
  }
  write(buf: Buf, data: Float32Array): void {
    d(buf).set(data);
  }
  read(buf: Buf, out: Float32Array): void {
    out.set(d(buf).subarray(0, out.length));
  }
  kvLayer(numBlocks: number, blockSize: number, numKvHeads: number, headDim: number, _dtype: KvDType): KvLayer {
    return new RefKv(numBlocks, blockSize, numKvHeads, headDim);
  }
  dispose(): void {}

  beginStep(meta: StepMeta): void {
    this.#meta = meta;
  }
  get #step(): StepMeta {
    if (!this.#meta) throw new Error("beginStep() was not called");
    return this.#meta;
  }

  embed(out: Buf, table: Weight, scale: number): void {
    const { numTokens, tokenIds } = this.#step;
    const dim = table.shape[1];
    const o = d(out);
    const t = w(table);
    for (let i = 0; i < numTokens; i++) {
      const row = tokenIds[i] * dim;
      for (let j = 0; j < dim; j++) o[i * dim + j] = t[row + j] * scale;
    }
  }

  rmsNorm(out: Buf, x: Buf, weight: Weight, rows: number, dim: number, eps: number, plusOne: boolean): void {
    normRows(d(out), 0, dim, d(x), 0, dim, rows, 1, dim, w(weight), eps, plusOne);
  }

  addRmsNorm(
    out: Buf,
    residual: Buf,
    x: Buf,
    weight: Weight,
    rows: number,
    dim: number,
    eps: number,
    plusOne: boolean,
  ): void {
    this.add(residual, x, rows * dim);
    this.rmsNorm(out, residual, weight, rows, dim, eps, plusOne);
  }

  matmul(out: Buf, x: Buf, weight: Weight, bias: Weight | null, rows: number): void {
    const [n, k] = weight.shape;
    const o = d(out);
    const a = d(x);
    const wt = w(weight);
    const b = bias ? w(bias) : null;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < n; j++) {
        o[r * n + j] = dot(a, r * k, wt, j * k, k) + (b ? b[j] : 0);
      }
    }
  }

  add(a: Buf, b: Buf, n: number): void {
    const x = d(a);
    const y = d(b);
    for (let i = 0; i < n; i++) x[i] += y[i];
  }

  rope(x: Buf, rows: number, rowStride: number, offset: number, p: RopeParams): void {
    const { positions } = this.#step;
    const data = d(x);
    const half = p.rotaryDim / 2;
    for (let r = 0; r < rows; r++) {
      const pos = positions[r];
      for (let h = 0; h < p.numHeads; h++) {
        const base = r * rowStride + offset + h * p.headDim;
        for (let i = 0; i < half; i++) {
          // transformers computes the angle in float32.
          const angle = Math.fround(pos * p.invFreq[i]);
          const cos = Math.cos(angle) * p.attentionFactor;
          const sin = Math.sin(angle) * p.attentionFactor;
          const a = data[base + i];
          const b = data[base + i + half];
          data[base + i] = a * cos - b * sin;
          data[base + i + half] = b * cos + a * sin;
        }
      }
    }
  }

  headNorm(
    x: Buf,
    rows: number,
    rowStride: number,
    offset: number,
    numHeads: number,
    headDim: number,
    weight: Weight,
    eps: number,
    plusOne: boolean,
  ): void {
    const data = d(x);
    normRows(data, offset, rowStride, data, offset, rowStride, rows, numHeads, headDim, w(weight), eps, plusOne);
  }

  gatedAct(out: Buf, gateUp: Buf, rows: number, inter: number, act: Activation): void {
    const o = d(out);
    const g = d(gateUp);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < inter; i++) {
        const gate = g[r * 2 * inter + i];
        const up = g[r * 2 * inter + inter + i];
        o[r * inter + i] = (act === "silu" ? silu(gate) : geluTanh(gate)) * up;
      }
    }
  }

  writeKv(kv: KvLayer, qkv: Buf, rowStride: number, kOffset: number, vOffset: number): void {
    const { numTokens, slotMapping } = this.#step;
    const cache = kv as RefKv;
    const width = cache.numKvHeads * cache.headDim;
    const src = d(qkv);
    for (let i = 0; i < numTokens; i++) {
      const slot = slotMapping[i];
      if (slot < 0) continue;
      cache.k.set(src.subarray(i * rowStride + kOffset, i * rowStride + kOffset + width), slot * width);
      cache.v.set(src.subarray(i * rowStride + vOffset, i * rowStride + vOffset + width), slot * width);
    }
  }

  attention(out: Buf, qkv: Buf, rowStride: number, kv: KvLayer, p: AttentionParams): void {
    const { numSeqs, queryStart, seqLens, blockTables, maxBlocksPerSeq } = this.#step;
    const cache = kv as RefKv;
    const { blockSize } = cache;
    const width = p.numKvHeads * p.headDim;
    const group = p.numHeads / p.numKvHeads;
    const q = d(qkv);
    const o = d(out);
    const scores = new Float64Array(Math.max(...Array.from(seqLens.subarray(0, numSeqs)), 1));
    for (let s = 0; s < numSeqs; s++) {
      const qLen = queryStart[s + 1] - queryStart[s];
      const seqLen = seqLens[s];
      for (let t = 0; t < qLen; t++) {
        const row = queryStart[s] + t;
        const pos = seqLen - qLen + t;
        const first = p.slidingWindow > 0 ? Math.max(0, pos - p.slidingWindow + 1) : 0;
        for (let h = 0; h < p.numHeads; h++) {
          const kvh = Math.floor(h / group);
          const qo = row * rowStride + h * p.headDim;
          let max = Number.NEGATIVE_INFINITY;
          for (let j = first; j <= pos; j++) {
            const slot = blockTables[s * maxBlocksPerSeq + Math.floor(j / blockSize)] * blockSize + (j % blockSize);
            const ko = slot * width + kvh * p.headDim;
            let dot = 0;
            for (let i = 0; i < p.headDim; i++) dot += q[qo + i] * cache.k[ko + i];
            let score = dot * p.scale;
            if (p.softcap > 0) score = p.softcap * Math.tanh(score / p.softcap);
            scores[j] = score;
            if (score > max) max = score;
          }
          let sum = 0;
          for (let j = first; j <= pos; j++) {
            scores[j] = Math.exp(scores[j] - max);
            sum += scores[j];
          }
          const oo = row * p.numHeads * p.headDim + h * p.headDim;
          for (let i = 0; i < p.headDim; i++) o[oo + i] = 0;
          for (let j = first; j <= pos; j++) {
            const slot = blockTables[s * maxBlocksPerSeq + Math.floor(j / blockSize)] * blockSize + (j % blockSize);
            const vo = slot * width + kvh * p.headDim;
            const pj = scores[j] / sum;
            for (let i = 0; i < p.headDim; i++) o[oo + i] += pj * cache.v[vo + i];
          }
        }
      }
    }
  }

  gatherRows(out: Buf, x: Buf, rowIdx: Int32Array, dim: number): void {
    const o = d(out);
    const src = d(x);
    for (let i = 0; i < rowIdx.length; i++) o.set(src.subarray(rowIdx[i] * dim, (rowIdx[i] + 1) * dim), i * dim);
  }

  argmaxRows(x: Buf, rows: number, cols: number, out: Int32Array): void {
    const v = d(x);
    for (let r = 0; r < rows; r++) out[r] = argmaxAt(v, r * cols, cols);
  }

  copyBlocks(layers: readonly KvLayer[], src: Int32Array, dst: Int32Array): void {
    for (const layer of layers) {
      const cache = layer as RefKv;
      const size = cache.blockSize * cache.numKvHeads * cache.headDim;
      for (let i = 0; i < src.length; i++) {
        cache.k.copyWithin(dst[i] * size, src[i] * size, (src[i] + 1) * size);
        cache.v.copyWithin(dst[i] * size, src[i] * size, (src[i] + 1) * size);
      }
    }
  }
}

/**
 * RMSNorm over `groups` consecutive vectors of `dim` floats in each of `rows` rows.
 * Row r, group g starts at inOffset + r*inStride + g*dim.
 */
function normRows(
  out: Float32Array,
  outOffset: number,
  outStride: number,
  x: Float32Array,
  inOffset: number,
  inStride: number,
  rows: number,
  groups: number,
  dim: number,
  weight: Float32Array,
  eps: number,
  plusOne: boolean,
): void {
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const ib = inOffset + r * inStride + g * dim;
      const ob = outOffset + r * outStride + g * dim;
      let ss = 0;
      for (let i = 0; i < dim; i++) ss += x[ib + i] * x[ib + i];
      const inv = 1 / Math.sqrt(ss / dim + eps);
      for (let i = 0; i < dim; i++) {
        const scale = plusOne ? 1 + weight[i] : weight[i];
        out[ob + i] = x[ib + i] * inv * scale;
      }
    }
  }
}

/** Σ x[xo+i]·y[yo+i] for i < n, in double precision. */
function dot(x: Float32Array, xo: number, y: Float32Array, yo: number, n: number): number {
  let a0 = 0;
  let a1 = 0;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    a0 += x[xo + i] * y[yo + i];
    a1 += x[xo + i + 1] * y[yo + i + 1];
  }
  if (i < n) a0 += x[xo + i] * y[yo + i];
  return a0 + a1;
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}
