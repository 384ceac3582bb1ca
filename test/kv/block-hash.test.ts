import assert from "node:assert/strict";
import { test } from "node:test";
import { hashBlock } from "../../src/kv/block-hash.ts";

const T = [5, 6, 7, 8, 9, 10, 11, 12];

test("hash is deterministic, 16 hex digits, and depends on every token", () => {
  const h = hashBlock(null, T, 0, 4, null);
  assert.match(h, /^[0-9a-f]{16}$/);
  assert.equal(hashBlock(null, [...T], 0, 4, null), h);
  for (let i = 0; i < 4; i++) {
    const u = [...T];
    u[i]++;
    assert.notEqual(hashBlock(null, u, 0, 4, null), h, `token ${i}`);
  }
  // Token order matters.
  assert.notEqual(hashBlock(null, [6, 5, 7, 8], 0, 4, null), h);
});

test("chaining: same tokens under a different parent hash differently", () => {
  const h0 = hashBlock(null, T, 0, 4, null);
  const other = hashBlock(null, [1, 2, 3, 4], 0, 4, null);
  const h1 = hashBlock(h0, T, 4, 4, null);
  assert.notEqual(hashBlock(other, T, 4, 4, null), h1);
  assert.notEqual(hashBlock(null, T, 4, 4, null), h1); // no parent vs parent
  // Block [9..12] as the first block differs from it as the second block.
  assert.notEqual(hashBlock(null, [9, 10, 11, 12], 0, 4, null), h1);
  // A parent is folded in full: parents differing in either half give different children.
  assert.notEqual(hashBlock("0000000000000001", T, 0, 4, null), hashBlock("0000000100000000", T, 0, 4, null));
});

test("cache salt (extra keys) separates otherwise equal blocks; null differs from empty", () => {
  const hs = new Set([
    hashBlock(null, T, 0, 4, null),
    hashBlock(null, T, 0, 4, ""),
    hashBlock(null, T, 0, 4, "tenant-a"),
    hashBlock(null, T, 0, 4, "tenant-b"),
  ]);
  assert.equal(hs.size, 4);
});

test("no collisions among 200k random blocks, and each 32-bit lane alone is well spread", () => {
  let x = 12345;
  const rnd = () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x >>> 8;
  };
  const all = new Set<string>();
  const laneA = new Set<string>();
  const laneB = new Set<string>();
  let parent: string | null = null;
  const block = [0, 0, 0, 0];
  for (let i = 0; i < 200_000; i++) {
    for (let j = 0; j < 4; j++) block[j] = rnd() % 32000;
    // Half chained, half not; small vocab so that many blocks share tokens.
    const h: string = hashBlock(i % 2 ? parent : null, block, 0, 4, null);
    all.add(h);
    laneA.add(h.slice(0, 8));
    laneB.add(h.slice(8));
    parent = h;
  }
  assert.ok(all.size >= 199_990, `distinct 64-bit hashes: ${all.size}`);
  // Birthday bound for 32 bits and 2e5 items: ~4.7 expected collisions per lane.
  assert.ok(laneA.size > 199_950 && laneB.size > 199_950, `lanes ${laneA.size} ${laneB.size}`);
});
