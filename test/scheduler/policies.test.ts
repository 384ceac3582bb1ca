import assert from "node:assert/strict";
import { test } from "node:test";
import { add, createScheduler, runToCompletion, ShadowKv, step, summary, tokens } from "./helpers.ts";

test("naive: one request at a time, KV reserved for maxModelLen, no prefix caching, prompt not chunked", () => {
  const s = createScheduler({ policy: "naive", numBlocks: 24, maxModelLen: 20, maxNumBatchedTokens: 16 });
  const shadow = new ShadowKv(24, 4);
  const a = add(s, "a", tokens(1, 9), { maxTokens: 2 });
  const b = add(s, "b", tokens(1, 9), { maxTokens: 2 });
  const r1 = step(s, undefined, shadow);
  assert.deepEqual(summary(r1.plan), [["a.0", 9, true]]);
  assert.equal(a.blockIds.length, 5); // ceil(20 / 4), reserved up front
  assert.equal(s.numFreeBlocks, 19);
  assert.equal(b.status, "waiting");
  const r2 = step(s, undefined, shadow);
  assert.deepEqual(summary(r2.plan), [["a.0", 1, true]]);
  assert.deepEqual(r2.finished, [a]);
  const r3 = step(s, undefined, shadow);
  assert.deepEqual(summary(r3.plan), [["b.0", 9, true]]);
  assert.equal(b.request.numCachedTokens, 0);
  assert.deepEqual(s.prefixCacheStats, { queries: 0, hits: 0 });
  for (let id = 0; id < 24; id++) assert.equal(s.kv.pool.hashOf(id), null);
  runToCompletion(s, 100, undefined, shadow);
});

test("naive: rejects prompts over the token budget and reservations over the pool", () => {
  const s = createScheduler({ policy: "naive", numBlocks: 12, maxModelLen: 20, maxNumBatchedTokens: 16 });
  assert.throws(() => add(s, "a", 17), /maxNumBatchedTokens 16/);
  assert.throws(() => add(s, "b", 4, { n: 3 }), /reserves 15 KV blocks/);
  add(s, "c", 4, { n: 2 });
});

test("naive: n = 2 children get their own reservation and run with their parent", () => {
  const s = createScheduler({ policy: "naive", numBlocks: 24, maxModelLen: 20, maxNumBatchedTokens: 16 });
  const shadow = new ShadowKv(24, 4);
  const a = add(s, "a", tokens(1, 9), { n: 2, maxTokens: 4 });
  const b = add(s, "b", 3, { maxTokens: 1 });
  step(s, undefined, shadow);
  const [p, c] = a.request.sequences;
  assert.deepEqual(p.blockIds, [0, 1, 2, 3, 4]);
  assert.deepEqual(c.blockIds, [0, 1, 2, 5, 6]); // shares the prompt's blocks, owns the rest
  const r2 = step(s, undefined, shadow);
  assert.deepEqual(summary(r2.plan), [
    ["a.0", 1, true],
    ["a.1", 1, true],
  ]);
  assert.deepEqual(r2.plan.blockCopies, { src: [2], dst: [7] });
  const order = runToCompletion(s, 100, undefined, shadow);
  assert.deepEqual(order, [p, c, b]);
});

test("static: a batch of maxNumSeqs runs to completion before anything else is admitted", () => {
  const s = createScheduler({ policy: "static", maxNumSeqs: 2 });
  const a = add(s, "a", 4, { maxTokens: 1 });
  const b = add(s, "b", 4, { maxTokens: 4 });
  const c = add(s, "c", 4, { maxTokens: 1 });
  const r1 = step(s);
  assert.deepEqual(summary(r1.plan), [
    ["a.0", 4, true],
    ["b.0", 4, true],
  ]);
  assert.deepEqual(r1.finished, [a]);
  // A slot is free, but c waits for the whole batch.
  for (let i = 0; i < 3; i++) assert.deepEqual(summary(step(s).plan), [["b.0", 1, true]]);
  assert.equal(b.status, "finished");
  assert.equal(c.status, "waiting");
  assert.deepEqual(summary(step(s).plan), [["c.0", 4, true]]);
});

test("static: the batch's prefill is chunked by the token budget", () => {
  const s = createScheduler({ policy: "static", maxNumSeqs: 2, maxNumBatchedTokens: 6 });
  add(s, "a", tokens(100, 5), { maxTokens: 3 });
  add(s, "b", tokens(200, 5), { maxTokens: 3 });
  add(s, "c", tokens(300, 5), { maxTokens: 3 });
  assert.deepEqual(summary(step(s).plan), [
    ["a.0", 5, true],
    ["b.0", 1, false],
  ]);
  assert.deepEqual(summary(step(s).plan), [
    ["a.0", 1, true],
    ["b.0", 4, true],
  ]);
  assert.deepEqual(summary(step(s).plan), [
    ["a.0", 1, true],
    ["b.0", 1, true],
  ]);
  assert.deepEqual(summary(step(s).plan), [["b.0", 1, true]]);
  assert.deepEqual(summary(step(s).plan), [["c.0", 5, true]]);
});

test("static: a preempted batch member returns to the batch, not behind newer requests", () => {
  const s = createScheduler({ policy: "static", maxNumSeqs: 2, numBlocks: 4, maxNumBatchedTokens: 32 });
  const shadow = new ShadowKv(4, 4);
  const a = add(s, "a", tokens(100, 8), { maxTokens: 3 });
  const b = add(s, "b", tokens(200, 8), { maxTokens: 3 });
  const c = add(s, "c", 3, { maxTokens: 1 });
  step(s, undefined, shadow);
  const r2 = step(s, undefined, shadow);
  assert.deepEqual(r2.plan.preempted, [b]);
  assert.deepEqual(s.waitingSeqs(), [b, c]);
  const order = runToCompletion(s, 100, undefined, shadow);
  assert.deepEqual(order, [a, b, c]);
});
