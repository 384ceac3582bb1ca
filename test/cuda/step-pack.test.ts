/** Step-metadata packing for the CUDA backend's single pinned upload (src/backends/cuda/step-pack.ts). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { layoutInts, metaLayout, PREFILL_TILE, StepPacker, tilesNeeded } from "../../src/backends/cuda/step-pack.ts";
import { makeStep } from "../backends/conformance.ts";

describe("cuda step packing", () => {
  test("sections are laid out back to back from capacities, block tables last", () => {
    const l = metaLayout({ tokens: 64, seqs: 16, blocksPerSeq: 5, tiles: 20 });
    assert.deepEqual(
      { ...l },
      {
        tokenIds: 0,
        positions: 64,
        slotMapping: 128,
        queryStart: 192,
        seqLens: 209,
        decodeSeqs: 225,
        tileSeq: 241,
        tileQ0: 261,
        blockTables: 281,
        blockTableStride: 5,
        capacity: 281 + 16 * 5,
      },
    );
    assert.deepEqual(Array.from(layoutInts(l)), [0, 64, 128, 192, 209, 281, 5, 225, 241, 261, 361]);
  });

  test("mixed step: decode sequences listed, prefill chunks cut into 16-query tiles", () => {
    // seq 0: 37-token prefill, seq 1: decode, seq 2: chunk of 16 over a cached prefix, seq 3: decode
    const meta = makeStep(
      [
        { cached: 0, add: 37, blocks: [3, 4, 5] },
        { cached: 20, add: 1, blocks: [0, 1] },
        { cached: 5, add: 16, blocks: [7, 8] },
        { cached: 40, add: 1, blocks: [9, 10, 11] },
      ],
      16,
    );
    assert.equal(tilesNeeded(meta), 3 + 1);
    const p = new StepPacker();
    const r = p.pack(meta);
    const L = p.layout;
    const b = p.buffer;
    assert.equal(r.layoutChanged, true);
    assert.equal(r.numTokens, 55);
    assert.equal(r.numSeqs, 4);
    assert.equal(r.numDecode, 2);
    assert.equal(r.numTiles, 4);
    assert.equal(r.maxDecodeLen, 41);
    assert.deepEqual(Array.from(b.subarray(L.decodeSeqs, L.decodeSeqs + 2)), [1, 3]);
    assert.deepEqual(Array.from(b.subarray(L.tileSeq, L.tileSeq + 4)), [0, 0, 0, 2]);
    assert.deepEqual(Array.from(b.subarray(L.tileQ0, L.tileQ0 + 4)), [0, PREFILL_TILE, 2 * PREFILL_TILE, 0]);
    assert.deepEqual(Array.from(b.subarray(L.tokenIds, L.tokenIds + 55)), Array.from(meta.tokenIds));
    assert.deepEqual(Array.from(b.subarray(L.positions, L.positions + 55)), Array.from(meta.positions));
    assert.deepEqual(Array.from(b.subarray(L.slotMapping, L.slotMapping + 55)), Array.from(meta.slotMapping));
    assert.deepEqual(Array.from(b.subarray(L.queryStart, L.queryStart + 5)), [0, 37, 38, 54, 55]);
    assert.deepEqual(Array.from(b.subarray(L.seqLens, L.seqLens + 4)), [37, 21, 21, 41]);
    assert.equal(L.blockTableStride, 3);
    assert.deepEqual(Array.from(b.subarray(L.blockTables, L.blockTables + 12)), Array.from(meta.blockTables));
    // upload = everything before the block tables + the used rows
    assert.equal(r.ints, L.blockTables + 4 * 3);
  });

  test("the layout stays put while steps fit, so device pointers (and CUDA graphs) stay valid", () => {
    const p = new StepPacker();
    const decode = (n: number) =>
      makeStep(
        Array.from({ length: n }, (_, i) => ({ cached: 10 + i, add: 1, blocks: [2 * i, 2 * i + 1] })),
        16,
      );
    assert.equal(p.pack(decode(8)).layoutChanged, true);
    const epoch = p.epoch;
    const layout = { ...p.layout };
    for (const n of [1, 3, 8, 16]) assert.equal(p.pack(decode(n)).layoutChanged, false, `batch ${n}`);
    assert.equal(p.epoch, epoch);
    assert.deepEqual({ ...p.layout }, layout);
    // more sequences than the capacity: the layout grows (doubling) once
    assert.equal(p.pack(decode(17)).layoutChanged, true);
    assert.equal(p.epoch, epoch + 1);
    assert.equal(p.layout.queryStart - p.layout.slotMapping, 64);
    assert.ok(p.layout.decodeSeqs - p.layout.seqLens >= 17);
    // a different block-table width is a new layout too
    const wide = makeStep([{ cached: 0, add: 1, blocks: [0, 1, 2, 3] }], 16);
    assert.equal(p.pack(wide).layoutChanged, true);
    assert.equal(p.layout.blockTableStride, 4);
  });

  test("sequences with no new tokens get no work and an empty step packs", () => {
    const p = new StepPacker();
    const m = makeStep([{ cached: 3, add: 2, blocks: [0] }], 16);
    const empty = {
      ...m,
      numTokens: 0,
      numSeqs: 1,
      queryStart: Int32Array.from([0, 0]),
      seqLens: Int32Array.from([3]),
    };
    const r = p.pack(empty);
    assert.equal(r.numDecode, 0);
    assert.equal(r.numTiles, 0);
    assert.equal(r.numTokens, 0);
  });
});
