/**
 * Argument validation of the CUDA backend, in TypeScript so that a bad call fails with a clear message
 * before anything is enqueued on the GPU (a kernel reading past a buffer would corrupt memory silently,
 * or kill the CUDA context). Pure functions over sizes; they allocate nothing on success.
 * The native addon re-checks ids and capacities as a last line of defence.
 */
import type { AttentionParams, RopeParams, StepMeta } from "../backend.ts";

/** Largest head dimension of the attention kernels (native MAX_HEAD_DIM). */
export const MAX_HEAD_DIM = 256;

function fail(msg: string): never {
  throw new RangeError(msg);
}

function isCount(n: number): boolean {
  return Number.isInteger(n) && n >= 0;
}

/** `buf` holds at least `need` elements. */
export function checkCapacity(what: string, size: number, need: number): void {
  if (need > size) fail(`${what}: needs ${need} elements, buffer holds ${size}`);
}

/** Elements a strided access touches: rows of `stride`, `width` wide, starting at `offset`. */
export function stridedNeed(rows: number, stride: number, offset: number, width: number): number {
  return rows <= 0 ? 0 : (rows - 1) * stride + offset + width;
}

export function checkRowsArg(what: string, rows: number, dim: number): void {
  if (!isCount(rows) || !isCount(dim)) fail(`${what}: rows and dim must be non-negative integers (${rows}, ${dim})`);
}

export function checkMatmul(
  outSize: number,
  xSize: number,
  shape: readonly number[],
  biasLen: number | null,
  rows: number,
): void {
  if (shape.length !== 2) fail(`matmul: weight must be a matrix, got shape [${shape}]`);
  const [n, k] = shape;
  if (!isCount(rows)) fail(`matmul: rows must be a non-negative integer, got ${rows}`);
  checkCapacity("matmul x", xSize, rows * k);
  checkCapacity("matmul out", outSize, rows * n);
  if (biasLen !== null && biasLen < n) fail(`matmul: bias has ${biasLen} elements, the weight has ${n} rows`);
}

/** A step's arrays agree with its counts; queryStart is non-decreasing and ends at numTokens. */
export function checkStep(m: StepMeta): void {
  const T = m.numTokens;
  const S = m.numSeqs;
  if (!isCount(T) || !isCount(S)) fail(`beginStep: numTokens ${T} and numSeqs ${S} must be non-negative integers`);
  if (m.tokenIds.length < T || m.positions.length < T || m.slotMapping.length < T) {
    fail(`beginStep: tokenIds/positions/slotMapping shorter than numTokens ${T}`);
  }
  if (m.queryStart.length < S + 1 || m.seqLens.length < S)
    fail(`beginStep: queryStart/seqLens shorter than numSeqs ${S}`);
  if (!isCount(m.maxBlocksPerSeq) || m.blockTables.length < S * m.maxBlocksPerSeq) {
    fail(`beginStep: blockTables holds ${m.blockTables.length} ints, needs ${S} × ${m.maxBlocksPerSeq}`);
  }
  if (m.queryStart[0] !== 0 || m.queryStart[S] !== T) {
    fail(`beginStep: queryStart must run from 0 to numTokens ${T} (got ${m.queryStart[0]} … ${m.queryStart[S]})`);
  }
  for (let s = 0; s < S; s++) {
    const q = m.queryStart[s + 1] - m.queryStart[s];
    if (q < 0) fail(`beginStep: queryStart decreases at sequence ${s}`);
    if (m.seqLens[s] < q) fail(`beginStep: sequence ${s} has ${q} new tokens but seqLens ${m.seqLens[s]}`);
  }
}

/**
 * The block table entries every sequence uses (ceil(seqLen / blockSize) of its row) are valid block ids
 * of a pool of `numBlocks`, and no sequence uses more entries than its row has. O(blocks used).
 */
export function checkBlockTables(m: StepMeta, blockSize: number, numBlocks: number): void {
  for (let s = 0; s < m.numSeqs; s++) {
    const used = Math.ceil(m.seqLens[s] / blockSize);
    if (used > m.maxBlocksPerSeq) {
      fail(
        `attention: sequence ${s} needs ${used} blocks of ${blockSize}, its block table row has ${m.maxBlocksPerSeq}`,
      );
    }
    const row = s * m.maxBlocksPerSeq;
    for (let j = 0; j < used; j++) {
      const b = m.blockTables[row + j];
      if (!(b >= 0 && b < numBlocks)) {
        fail(`attention: sequence ${s} block table entry ${j} is ${b}, the KV pool has ${numBlocks} blocks`);
      }
    }
  }
}

export function checkAttention(
  p: AttentionParams,
  kv: { numKvHeads: number; headDim: number },
  outSize: number,
  qkvSize: number,
  rowStride: number,
  numTokens: number,
): void {
  if (!(p.numKvHeads > 0 && p.numHeads > 0 && p.numHeads % p.numKvHeads === 0)) {
    fail(`attention: numHeads ${p.numHeads} must be a positive multiple of numKvHeads ${p.numKvHeads}`);
  }
  if (!(p.headDim > 0 && p.headDim <= MAX_HEAD_DIM)) fail(`attention: headDim ${p.headDim} outside 1..${MAX_HEAD_DIM}`);
  if (p.numKvHeads !== kv.numKvHeads || p.headDim !== kv.headDim) {
    fail(
      `attention: ${p.numKvHeads} KV heads × ${p.headDim} do not match the KV layer's ${kv.numKvHeads} × ${kv.headDim}`,
    );
  }
  if (rowStride < p.numHeads * p.headDim) fail(`attention: rowStride ${rowStride} < numHeads × headDim`);
  checkCapacity("attention qkv", qkvSize, stridedNeed(numTokens, rowStride, 0, p.numHeads * p.headDim));
  checkCapacity("attention out", outSize, numTokens * p.numHeads * p.headDim);
  if (!(p.slidingWindow >= 0) || !(p.softcap >= 0)) fail("attention: slidingWindow and softcap must be ≥ 0");
}

export function checkWriteKv(
  kv: { numKvHeads: number; headDim: number },
  qkvSize: number,
  rowStride: number,
  kOffset: number,
  vOffset: number,
  numTokens: number,
): void {
  const width = kv.numKvHeads * kv.headDim;
  if (kOffset < 0 || vOffset < 0 || kOffset + width > rowStride || vOffset + width > rowStride) {
    fail(`writeKv: K at ${kOffset} / V at ${vOffset} (${width} wide) do not fit rows of ${rowStride}`);
  }
  checkCapacity("writeKv qkv", qkvSize, stridedNeed(numTokens, rowStride, Math.max(kOffset, vOffset), width));
}

export function checkRope(
  p: RopeParams,
  size: number,
  rows: number,
  rowStride: number,
  offset: number,
  numTokens: number,
): void {
  if (rows > numTokens) fail(`rope: ${rows} rows but the step has ${numTokens} tokens (positions)`);
  if (!(p.rotaryDim > 0 && p.rotaryDim % 2 === 0 && p.rotaryDim <= p.headDim)) {
    fail(`rope: rotaryDim ${p.rotaryDim} must be even and ≤ headDim ${p.headDim}`);
  }
  if (p.invFreq.length < p.rotaryDim / 2)
    fail(`rope: invFreq has ${p.invFreq.length} entries, needs ${p.rotaryDim / 2}`);
  if (offset + p.numHeads * p.headDim > rowStride) fail(`rope: heads at ${offset} overflow rows of ${rowStride}`);
  checkCapacity("rope x", size, stridedNeed(rows, rowStride, offset, p.numHeads * p.headDim));
}

export function checkHeadNorm(
  size: number,
  rows: number,
  rowStride: number,
  offset: number,
  numHeads: number,
  headDim: number,
  wLen: number,
): void {
  if (wLen < headDim) fail(`headNorm: weight has ${wLen} elements, headDim is ${headDim}`);
  if (offset + numHeads * headDim > rowStride) fail(`headNorm: heads at ${offset} overflow rows of ${rowStride}`);
  checkCapacity("headNorm x", size, stridedNeed(rows, rowStride, offset, numHeads * headDim));
}

export function checkGather(outSize: number, xSize: number, rowIdx: Int32Array, dim: number): void {
  const rows = Math.floor(xSize / Math.max(1, dim));
  for (let i = 0; i < rowIdx.length; i++) {
    if (!(rowIdx[i] >= 0 && rowIdx[i] < rows)) fail(`gatherRows: row ${rowIdx[i]} outside 0..${rows - 1}`);
  }
  checkCapacity("gatherRows out", outSize, rowIdx.length * dim);
}

export function checkCopyBlocks(src: Int32Array, dst: Int32Array, numBlocks: number): void {
  if (src.length !== dst.length) fail(`copyBlocks: ${src.length} sources but ${dst.length} destinations`);
  for (let i = 0; i < src.length; i++) {
    if (!(src[i] >= 0 && src[i] < numBlocks && dst[i] >= 0 && dst[i] < numBlocks)) {
      fail(`copyBlocks: pair ${src[i]} → ${dst[i]} outside the pool of ${numBlocks} blocks`);
    }
  }
}
