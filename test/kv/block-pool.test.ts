import assert from "node:assert/strict";
import { test } from "node:test";
import { BlockPool } from "../../src/kv/block-pool.ts";

test("allocation hands out block ids in order, starting at 0 (no reserved block)", () => {
  const p = new BlockPool(5, 4);
  assert.deepEqual([p.allocate(), p.allocate(), p.allocate()], [0, 1, 2]);
  assert.equal(p.numFreeBlocks, 2);
  assert.equal(p.refCount(0), 1);
  assert.deepEqual([p.allocate(), p.allocate(), p.allocate()], [3, 4, -1]);
  assert.equal(p.numFreeBlocks, 0);
  p.checkInvariants();
});

test("freed blocks go to the tail; allocation pops the head (LRU)", () => {
  const p = new BlockPool(5, 4);
  for (let i = 0; i < 5; i++) p.allocate();
  for (const id of [3, 1, 4]) {
    assert.equal(p.release(id), 0);
    p.enqueueFree(id);
  }
  assert.deepEqual(p.freeQueue(), [3, 1, 4]);
  assert.equal(p.allocate(), 3);
  assert.deepEqual(p.freeQueue(), [1, 4]);
  p.checkInvariants();
});

test("acquiring a free cached block unlinks it from the middle of the queue", () => {
  const p = new BlockPool(6, 4);
  for (let i = 0; i < 6; i++) p.allocate();
  assert.ok(p.setHash(2, "h2"));
  for (const id of [0, 2, 4, 5]) {
    p.release(id);
    p.enqueueFree(id);
  }
  assert.deepEqual(p.freeQueue(), [0, 2, 4, 5]);
  assert.equal(p.lookup("h2"), 2);
  p.acquire(2);
  assert.deepEqual(p.freeQueue(), [0, 4, 5]);
  assert.equal(p.refCount(2), 1);
  assert.equal(p.hashOf(2), "h2"); // still cached while in use
  // Unlinking the head and the tail works too.
  p.acquire(0);
  p.acquire(5);
  assert.deepEqual(p.freeQueue(), [4]);
  p.checkInvariants();
});

test("popping a cached block for reuse evicts its hash", () => {
  const p = new BlockPool(2, 4);
  const a = p.allocate();
  p.allocate();
  p.setHash(a, "ha");
  p.release(a);
  p.enqueueFree(a);
  assert.equal(p.lookup("ha"), a);
  assert.equal(p.allocate(), a);
  assert.equal(p.lookup("ha"), -1);
  assert.equal(p.hashOf(a), null);
  assert.equal(p.numEvictions, 1);
  p.checkInvariants();
});

test("setHash refuses a second block with the same content and a block that already has a hash", () => {
  const p = new BlockPool(3, 4);
  const a = p.allocate();
  const b = p.allocate();
  assert.equal(p.setHash(a, "h"), true);
  assert.equal(p.setHash(b, "h"), false);
  assert.equal(p.setHash(a, "h2"), false);
  assert.equal(p.hashOf(b), null);
  assert.equal(p.lookup("h"), a);
  p.dropHash(a);
  assert.equal(p.lookup("h"), -1);
  p.checkInvariants();
});

test("misuse throws: double enqueue, enqueue in use, release below zero", () => {
  const p = new BlockPool(2, 4);
  assert.throws(() => p.enqueueFree(0), /already in the free queue/);
  const a = p.allocate();
  assert.throws(() => p.enqueueFree(a), /refCount 1/);
  p.release(a);
  assert.throws(() => p.release(a), /below zero/);
});
