/** Argument validation of the CUDA backend (src/backends/cuda/checks.ts): every bad call names the problem. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  checkAttention,
  checkBlockTables,
  checkCopyBlocks,
  checkGather,
  checkHeadNorm,
  checkMatmul,
  checkRope,
  checkStep,
  checkWriteKv,
  stridedNeed,
} from "../../src/backends/cuda/checks.ts";
import { makeStep } from "../backends/conformance.ts";

const attn = { numHeads: 4, numKvHeads: 2, headDim: 64, scale: 0.125, slidingWindow: 0, softcap: 0 };
const rope = { numHeads: 4, headDim: 64, rotaryDim: 64, invFreq: new Float32Array(32), attentionFactor: 1 };

describe("cuda argument checks", () => {
  test("strided accesses: the last row ends at (rows − 1)·stride + offset + width", () => {
    assert.equal(stridedNeed(3, 10, 2, 4), 26);
    assert.equal(stridedNeed(0, 10, 2, 4), 0);
  });

  test("matmul: buffer capacities, bias length, matrix shape", () => {
    checkMatmul(6, 12, [3, 4], 3, 2);
    assert.throws(() => checkMatmul(5, 12, [3, 4], null, 2), /matmul out: needs 6 elements, buffer holds 5/);
    assert.throws(() => checkMatmul(6, 7, [3, 4], null, 2), /matmul x: needs 8/);
    assert.throws(() => checkMatmul(6, 12, [3, 4], 2, 2), /bias has 2 elements, the weight has 3 rows/);
    assert.throws(() => checkMatmul(6, 12, [12], null, 1), /must be a matrix/);
    assert.throws(() => checkMatmul(6, 12, [3, 4], null, 1.5), /rows must be a non-negative integer/);
  });

  test("step metadata must be self-consistent", () => {
    const ok = makeStep(
      [
        { cached: 4, add: 3, blocks: [0] },
        { cached: 0, add: 1, blocks: [1] },
      ],
      16,
    );
    checkStep(ok);
    assert.throws(
      () => checkStep({ ...ok, queryStart: Int32Array.from([0, 3, 5]) }),
      /queryStart must run from 0 to numTokens 4/,
    );
    assert.throws(
      () => checkStep({ ...ok, queryStart: Int32Array.from([0, 5, 4]) }),
      /queryStart decreases at sequence 1/,
    );
    assert.throws(
      () => checkStep({ ...ok, seqLens: Int32Array.from([2, 1]) }),
      /sequence 0 has 3 new tokens but seqLens 2/,
    );
    assert.throws(() => checkStep({ ...ok, tokenIds: new Int32Array(2) }), /shorter than numTokens 4/);
    assert.throws(() => checkStep({ ...ok, blockTables: new Int32Array(1) }), /blockTables holds 1 ints, needs 2 × 1/);
  });

  test("block tables: every used entry is a block of the pool", () => {
    const m = makeStep([{ cached: 20, add: 1, blocks: [3, 9] }], 16);
    checkBlockTables(m, 16, 10);
    assert.throws(() => checkBlockTables(m, 16, 9), /entry 1 is 9, the KV pool has 9 blocks/);
    assert.throws(() => checkBlockTables(m, 8, 10), /needs 3 blocks of 8, its block table row has 2/);
    // entries past the sequence's length are never read, so garbage there is fine
    const g = makeStep([{ cached: 0, add: 1, blocks: [0, 1] }], 16);
    g.blockTables[1] = -7;
    checkBlockTables(g, 16, 2);
  });

  test("attention: head counts, KV layer match, head dim limit, capacities", () => {
    const stride = (4 + 2 * 2) * 64;
    const kv = { numKvHeads: 2, headDim: 64 };
    checkAttention(attn, kv, 5 * 256, 5 * stride, stride, 5);
    assert.throws(() => checkAttention({ ...attn, numHeads: 3 }, kv, 1e6, 1e6, stride, 5), /multiple of numKvHeads/);
    assert.throws(
      () => checkAttention(attn, { numKvHeads: 1, headDim: 64 }, 1e6, 1e6, stride, 5),
      /do not match the KV layer/,
    );
    assert.throws(
      () => checkAttention({ ...attn, headDim: 512 }, { numKvHeads: 2, headDim: 512 }, 1e9, 1e9, 8 * 512, 5),
      /headDim 512 outside 1\.\.256/,
    );
    assert.throws(() => checkAttention(attn, kv, 5 * 256 - 1, 5 * stride, stride, 5), /attention out/);
  });

  test("writeKv, rope, headNorm, gatherRows, copyBlocks", () => {
    const kv = { numKvHeads: 2, headDim: 64 };
    checkWriteKv(kv, 3 * 512, 512, 256, 384, 3);
    assert.throws(() => checkWriteKv(kv, 3 * 512, 512, 256, 400, 3), /do not fit rows of 512/);
    checkRope(rope, 6 * 512, 6, 512, 0, 6);
    assert.throws(() => checkRope(rope, 6 * 512, 7, 512, 0, 6), /7 rows but the step has 6 tokens/);
    assert.throws(() => checkRope({ ...rope, rotaryDim: 63 }, 1e6, 1, 512, 0, 6), /must be even/);
    assert.throws(() => checkRope({ ...rope, invFreq: new Float32Array(3) }, 1e6, 1, 512, 0, 6), /invFreq has 3/);
    checkHeadNorm(2 * 512, 2, 512, 256, 2, 64, 64);
    assert.throws(() => checkHeadNorm(2 * 512, 2, 512, 400, 2, 64, 64), /overflow rows of 512/);
    checkGather(4 * 8, 10 * 8, Int32Array.from([9, 0, 4, 4]), 8);
    assert.throws(() => checkGather(4 * 8, 10 * 8, Int32Array.from([10]), 8), /row 10 outside 0\.\.9/);
    checkCopyBlocks(Int32Array.from([1, 2]), Int32Array.from([3, 4]), 5);
    assert.throws(() => checkCopyBlocks(Int32Array.from([1]), Int32Array.from([5]), 5), /pair 1 → 5 outside/);
    assert.throws(() => checkCopyBlocks(Int32Array.from([1]), new Int32Array(0), 5), /1 sources but 0 destinations/);
  });
});
