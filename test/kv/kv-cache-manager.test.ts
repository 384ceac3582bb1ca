import assert from "node:assert/strict";
import { test } from "node:test";
import { KvCacheManager, type KvSequence } from "../../src/kv/kv-cache-manager.ts";

/** The manager only reads tokenIds; tests append to them like the scheduler does. */
type TestSeq = KvSequence & { tokenIds: number[] };

function seq(tokenIds: number[], cacheSalt: string | null = null): TestSeq {
  return { tokenIds, cacheSalt, numComputedTokens: 0, blockIds: [], blockHashes: [] };
}

function range(start: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}

function manager(numBlocks = 10, enablePrefixCaching = true): KvCacheManager {
  return new KvCacheManager({ numBlocks, blockSize: 4, enablePrefixCaching });
}

/** Allocates and "computes" the whole sequence in one step, the way the scheduler + update would. */
function prefill(kv: KvCacheManager, s: KvSequence, cached = kv.findCachedPrefix(s)): void {
  assert.ok(kv.allocateSlots(s, s.tokenIds.length - cached.numTokens, cached));
  s.numComputedTokens = s.tokenIds.length;
  kv.checkInvariants();
}

test("exact block ids, free count and usage", () => {
  const kv = manager();
  const a = seq(range(1, 9));
  assert.ok(kv.allocateSlots(a, 9, kv.findCachedPrefix(a)));
  assert.deepEqual(a.blockIds, [0, 1, 2]);
  assert.equal(kv.numFreeBlocks, 7);
  assert.equal(kv.usage, 0.3);
  a.numComputedTokens = 9;
  // Growing by one token inside block 2 needs nothing; crossing into block 3 takes the next free block.
  a.tokenIds.push(50);
  assert.ok(kv.allocateSlots(a, 1));
  assert.deepEqual(a.blockIds, [0, 1, 2]);
  a.numComputedTokens = 10;
  a.tokenIds.push(51, 52, 53);
  assert.ok(kv.allocateSlots(a, 3));
  assert.deepEqual(a.blockIds, [0, 1, 2, 3]);
  kv.checkInvariants();
});

test("free releases tail first: the free queue ends with the sequence's blocks in reverse order", () => {
  const kv = manager();
  const a = seq(range(1, 9));
  prefill(kv, a);
  kv.free(a);
  assert.deepEqual(a.blockIds, []);
  assert.deepEqual(kv.pool.freeQueue(), [3, 4, 5, 6, 7, 8, 9, 2, 1, 0]);
  kv.checkInvariants();
});

test("a cached prefix is found, adopted, and unlinked from the middle of the free queue", () => {
  const kv = manager();
  const a = seq(range(1, 9));
  prefill(kv, a);
  kv.free(a);
  const b = seq([...range(1, 8), 77, 78]); // shares 2 full blocks with a
  const p = kv.findCachedPrefix(b);
  assert.deepEqual(p, { blocks: [0, 1], numTokens: 8 });
  assert.deepEqual(kv.stats, { queries: 9, hits: 0 }); // a's lookup; b's is counted only on adoption
  assert.ok(kv.allocateSlots(b, 2, p));
  assert.equal(b.numComputedTokens, 8);
  assert.deepEqual(b.blockIds, [0, 1, 3]);
  assert.deepEqual(kv.pool.freeQueue(), [4, 5, 6, 7, 8, 9, 2]);
  assert.deepEqual(kv.stats, { queries: 19, hits: 8 });
  kv.checkInvariants();
});

test("the last token is always computed: a prompt of exactly 2 full blocks reuses only 1", () => {
  const kv = manager();
  const a = seq(range(1, 9));
  prefill(kv, a);
  assert.deepEqual(kv.findCachedPrefix(seq(range(1, 8))), { blocks: [0], numTokens: 4 });
  assert.deepEqual(kv.findCachedPrefix(seq(range(1, 9))), { blocks: [0, 1], numTokens: 8 });
  assert.deepEqual(kv.findCachedPrefix(seq(range(1, 4))), { blocks: [], numTokens: 0 });
  // A shared block in use by a is shared, not copied.
  const b = seq(range(1, 10));
  prefill(kv, b);
  assert.deepEqual(b.blockIds, [0, 1, 3]);
  assert.equal(kv.pool.refCount(0), 2);
});

test("different cache salt or different earlier tokens: no hit", () => {
  const kv = manager();
  prefill(kv, seq(range(1, 9), "x"));
  assert.equal(kv.findCachedPrefix(seq(range(1, 9), "y")).numTokens, 0);
  assert.equal(kv.findCachedPrefix(seq(range(1, 9))).numTokens, 0);
  assert.equal(kv.findCachedPrefix(seq(range(1, 9), "x")).numTokens, 8);
  // Same second block, different first block: the chain breaks at block 0.
  assert.equal(kv.findCachedPrefix(seq([9, 9, 9, 9, ...range(5, 5)], "x")).numTokens, 0);
});

test("eviction drops the hash: a reused cached block is no longer found", () => {
  const kv = manager(4);
  const a = seq(range(1, 9));
  prefill(kv, a);
  kv.free(a); // queue: [3, 2, 1, 0]
  const filler = seq(range(500, 8));
  prefill(kv, filler, { blocks: [], numTokens: 0 }); // takes 3 and 2 (a's third block, then none cached)
  assert.deepEqual(filler.blockIds, [3, 2]);
  assert.equal(kv.findCachedPrefix(seq(range(1, 9))).numTokens, 8);
  const more = seq(range(600, 4));
  prefill(kv, more, { blocks: [], numTokens: 0 }); // pops block 1: a's second block is evicted
  assert.deepEqual(more.blockIds, [1]);
  assert.equal(kv.pool.numEvictions, 1);
  assert.deepEqual(kv.findCachedPrefix(seq(range(1, 9))), { blocks: [0], numTokens: 4 });
  kv.checkInvariants();
});

test("out of blocks: allocateSlots returns false and changes nothing", () => {
  const kv = manager(3);
  const a = seq(range(1, 9));
  prefill(kv, a);
  const b = seq(range(100, 8));
  const before = kv.pool.freeQueue();
  assert.equal(kv.allocateSlots(b, 8, kv.findCachedPrefix(b)), false);
  assert.deepEqual(b.blockIds, []);
  assert.deepEqual(kv.pool.freeQueue(), before);
  assert.equal(kv.numLiveSequences, 1);
  // Adopting evictable cached blocks costs free blocks too.
  kv.free(a);
  const c = seq([...range(1, 8), 5, 5, 5, 5, 5]); // 2 cached blocks + 5 new tokens = 4 blocks > 3
  assert.equal(kv.allocateSlots(c, 5, kv.findCachedPrefix(c)), false);
  assert.deepEqual(kv.pool.freeQueue(), [2, 1, 0]);
  kv.checkInvariants();
});

test("fork shares blocks; the first write into the shared partial block copies it (exact ids)", () => {
  const kv = manager();
  const parent = seq(range(1, 6));
  prefill(kv, parent); // blocks [0, 1]; block 1 holds 2 tokens
  const child = seq(parent.tokenIds.slice());
  child.numComputedTokens = 6;
  kv.fork(parent, child);
  assert.deepEqual(child.blockIds, [0, 1]);
  assert.equal(kv.pool.refCount(0), 2);
  assert.equal(kv.pool.refCount(1), 2);
  kv.checkInvariants();

  child.tokenIds.push(40);
  assert.ok(kv.allocateSlots(child, 1));
  assert.deepEqual(child.blockIds, [0, 2]);
  assert.deepEqual(kv.takePendingCopies(), { src: [1], dst: [2] });
  assert.equal(kv.pool.refCount(1), 1);
  assert.equal(kv.pool.refCount(2), 1);
  // The parent is now the only holder of block 1: it writes in place.
  parent.tokenIds.push(41);
  assert.ok(kv.allocateSlots(parent, 1));
  assert.deepEqual(parent.blockIds, [0, 1]);
  assert.deepEqual(kv.takePendingCopies(), { src: [], dst: [] });
  kv.checkInvariants();
});

test("no copy when the shared prompt ends on a block boundary", () => {
  const kv = manager();
  const parent = seq(range(1, 8));
  prefill(kv, parent);
  const child = seq(parent.tokenIds.slice());
  child.numComputedTokens = 8;
  kv.fork(parent, child);
  child.tokenIds.push(40);
  assert.ok(kv.allocateSlots(child, 1));
  assert.deepEqual(child.blockIds, [0, 1, 2]);
  assert.deepEqual(kv.takePendingCopies(), { src: [], dst: [] });
});

test("a copy source whose last holder leaves before the copy runs is held until drained", () => {
  const kv = manager(4);
  const parent = seq(range(1, 6));
  prefill(kv, parent); // [0, 1]
  const child = seq(parent.tokenIds.slice());
  child.numComputedTokens = 6;
  kv.fork(parent, child);
  child.tokenIds.push(40);
  assert.ok(kv.allocateSlots(child, 1)); // copy 1 → 2
  kv.free(parent); // block 1 reaches 0 but the pending copy still reads it
  assert.deepEqual(kv.pool.freeQueue(), [3]);
  assert.equal(kv.numFreeBlocks, 1);
  kv.checkInvariants();
  assert.deepEqual(kv.takePendingCopies(), { src: [1], dst: [2] });
  assert.deepEqual(kv.pool.freeQueue(), [3, 1]);
  kv.checkInvariants();
});

test("a pending copy whose destination is freed is dropped", () => {
  const kv = manager(4);
  const parent = seq(range(1, 6));
  prefill(kv, parent);
  const child = seq(parent.tokenIds.slice());
  child.numComputedTokens = 6;
  kv.fork(parent, child);
  child.tokenIds.push(40);
  assert.ok(kv.allocateSlots(child, 1)); // copy 1 → 2
  kv.free(child); // preempted in the same step
  assert.deepEqual(kv.takePendingCopies(), { src: [], dst: [] });
  assert.equal(kv.pool.refCount(1), 1);
  kv.checkInvariants();
});

test("blocks registered for a step that never ran are uncached when freed", () => {
  const kv = manager();
  const a = seq(range(1, 9));
  assert.ok(kv.allocateSlots(a, 9, kv.findCachedPrefix(a)));
  assert.equal(kv.pool.numCachedBlocks, 2); // registered at allocation...
  kv.free(a); // ...but freed before its forward pass (numComputedTokens still 0)
  assert.equal(kv.pool.numCachedBlocks, 0);
  assert.equal(kv.findCachedPrefix(seq(range(1, 9))).numTokens, 0);
  kv.checkInvariants();
});

test("two sequences computing the same block: the first stays canonical, the duplicate uncached", () => {
  const kv = manager();
  const a = seq(range(1, 9));
  const b = seq(range(1, 9));
  const none = { blocks: [], numTokens: 0 };
  prefill(kv, a, none);
  prefill(kv, b, none);
  assert.deepEqual(b.blockIds, [3, 4, 5]);
  assert.equal(kv.pool.hashOf(3), null);
  assert.deepEqual(kv.findCachedPrefix(seq(range(1, 9))).blocks, [0, 1]);
});

test("prefix caching off: no hashes, no hits, no stats", () => {
  const kv = manager(10, false);
  const a = seq(range(1, 9));
  prefill(kv, a);
  kv.free(a);
  const b = seq(range(1, 9));
  assert.deepEqual(kv.findCachedPrefix(b), { blocks: [], numTokens: 0 });
  prefill(kv, b);
  for (let id = 0; id < 10; id++) assert.equal(kv.pool.hashOf(id), null);
  assert.deepEqual(kv.stats, { queries: 0, hits: 0 });
});

test("lookahead reserves blocks beyond the computed tokens", () => {
  const kv = manager();
  const a = seq(range(1, 5));
  assert.ok(kv.allocateSlots(a, 5, null, 15)); // 20 tokens → 5 blocks
  assert.equal(a.blockIds.length, 5);
  a.numComputedTokens = 5;
  a.tokenIds.push(9);
  assert.ok(kv.allocateSlots(a, 1));
  assert.equal(a.blockIds.length, 5);
  kv.checkInvariants();
});

test("checkInvariants catches a leaked reference", () => {
  const kv = manager();
  const a = seq(range(1, 5));
  prefill(kv, a);
  kv.pool.acquire(a.blockIds[0]);
  assert.throws(() => kv.checkInvariants(), /refCount 2 but 1/);
});

test("resetPrefixCache forgets free cached blocks only", () => {
  const kv = manager();
  const a = seq(range(1, 9));
  prefill(kv, a);
  const b = seq(range(100, 9));
  prefill(kv, b);
  kv.free(a);
  assert.equal(kv.resetPrefixCache(), 2);
  assert.equal(kv.findCachedPrefix(seq(range(1, 9))).numTokens, 0);
  assert.equal(kv.findCachedPrefix(seq(range(100, 9))).numTokens, 8);
  kv.checkInvariants();
});
