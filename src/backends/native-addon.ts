/**
 * What the native addons (native/cpu, native/cuda) have in common: objects are numeric handles (buffers,
 * weights, KV layers) and the llama-graph ops take handles plus plain numbers. Each backend's addon type
 * extends this with its own step metadata, rope, attention and block-copy entry points.
 */
export interface NativeHandleOps {
  describe(): string;
  buffer(size: number): number;
  write(buf: number, data: Float32Array): void;
  read(buf: number, out: Float32Array): void;
  weight(data: Uint8Array, srcDtype: number, rows: number, cols: number, storage: number): number;
  /** An int8/int4 matrix from quant.ts codes and scales (storage: int8 or int4). */
  weightQuantized(storage: number, rows: number, cols: number, q: Int8Array | Uint8Array, scales: Float32Array): number;
  weightBytes(w: number): number;
  kvLayer(numBlocks: number, blockSize: number, numKvHeads: number, headDim: number, dtype: number): number;
  kvBytes(kv: number): number;
  free(kind: number, id: number): void;
  dispose(): void;
  embed(out: number, table: number, scale: number): void;
  rmsNorm(out: number, x: number, w: number, rows: number, dim: number, eps: number, plusOne: boolean): void;
  addRmsNorm(
    out: number,
    res: number,
    x: number,
    w: number,
    rows: number,
    dim: number,
    eps: number,
    plusOne: boolean,
  ): void;
  matmul(out: number, x: number, w: number, bias: number, rows: number): void;
  add(a: number, b: number, n: number): void;
  headNorm(
    x: number,
    rows: number,
    rowStride: number,
    offset: number,
    numHeads: number,
    headDim: number,
    w: number,
    eps: number,
    plusOne: boolean,
  ): void;
  gatedAct(out: number, gateUp: number, rows: number, inter: number, act: number): void;
  writeKv(kv: number, qkv: number, rowStride: number, kOffset: number, vOffset: number): void;
  gatherRows(out: number, x: number, rowIdx: Int32Array, dim: number): void;
}
