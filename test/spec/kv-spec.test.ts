// KV cache manager pieces for speculative decoding: lookahead allocation, commitSpeculative, and the
// free-queue head for blocks that hold nothing worth caching (exact block ids, as in test/kv).
import assert from "node:assert/strict";
import { test } from "node:test";
import { BlockPool } from "../../src/kv/block-pool.ts";
import { KvCacheManager, type KvSequence } from "../../src/kv/kv-cache-manager.ts";

function seq(tokens: number[]): KvSequence & { tokenIds: number[] } {
  return { tokenIds: tokens, cacheSalt: null, numComputedTokens: 0, blockIds: [], blockHashes: [] };
}

test("enqueueFreeFront puts an uncached block next in line; cached blocks are refused", () => {
  const pool = new BlockPool(4, 2);
  const a = pool.allocate();
  const b = pool.allocate();
  assert.deepEqual([a, b], [0, 1]);
  pool.release(b);
  pool.enqueueFreeFront(b);
  assert.deepEqual(pool.freeQueue(), [1, 2, 3]);
  assert.equal(pool.allocate(), 1);
  pool.setHash(a, "h");
  pool.release(a);
  assert.throws(() => pool.enqueueFreeFront(a), /cached/);
  pool.enqueueFree(a);
  pool.checkInvariants();
});

test("commitSpeculative hashes blocks full of accepted tokens and returns unused lookahead to the head", () => {
  const kv = new KvCacheManager({ numBlocks: 8, blockSize: 4, enablePrefixCaching: true });
  const s = seq([1, 2, 3, 4, 5, 6]);
  assert.ok(kv.allocateSlots(s, 5)); // prompt: 5 of 6 tokens computed
  s.numComputedTokens = 5;
  assert.deepEqual(s.blockIds, [0, 1]);
  // Decode token 5 plus 5 draft tokens at positions 6..10: blocks up to position 10.
  assert.ok(kv.allocateSlots(s, 1, null, 5));
  assert.deepEqual(s.blockIds, [0, 1, 2]);
  assert.equal(kv.pool.hashOf(1), null, "the block holding draft tokens is not hashed yet");
  // 2 drafts accepted (positions 6, 7), then a sampled token at 8.
  s.numComputedTokens = 6;
  s.tokenIds.push(7, 8, 9);
  s.numComputedTokens += 2;
  kv.commitSpeculative(s, 6);
  assert.notEqual(kv.pool.hashOf(1), null, "block 1 (positions 4..7) is full of accepted tokens");
  assert.deepEqual(s.blockIds, [0, 1], "block 2 held only rejected drafts and the next token's slot");
  assert.equal(kv.pool.freeQueue()[0], 2);
  kv.checkInvariants();
  // A prompt sharing those 8 tokens hits both blocks.
  const t = seq([1, 2, 3, 4, 5, 6, 7, 8, 42]);
  assert.deepEqual(kv.findCachedPrefix(t).blocks, [0, 1]);
});

test("copy-on-write: a forked child speculating into its shared partial block gets a private copy first", () => {
  const kv = new KvCacheManager({ numBlocks: 8, blockSize: 4, enablePrefixCaching: false });
  const parent = seq([1, 2, 3, 4, 5, 6]);
  assert.ok(kv.allocateSlots(parent, 6));
  parent.numComputedTokens = 6;
  const child = seq([1, 2, 3, 4, 5, 6, 9]);
  kv.fork(parent, child, 6);
  child.numComputedTokens = 6;
  // The child's decode token (position 6) and drafts (7..9) write into shared block 1 and a new block.
  assert.ok(kv.allocateSlots(child, 1, null, 3));
  assert.notEqual(child.blockIds[1], parent.blockIds[1]);
  assert.deepEqual(kv.takePendingCopies(), { src: [parent.blockIds[1]], dst: [child.blockIds[1]] });
  kv.checkInvariants();
});
