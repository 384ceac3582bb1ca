import assert from "node:assert/strict";
import { test } from "node:test";
import { RequestRejectedError } from "../../src/scheduler/scheduler.ts";
import type { Sequence } from "../../src/scheduler/sequence.ts";
import {
  add,
  createRequest,
  createScheduler,
  EOS,
  runToCompletion,
  ShadowKv,
  step,
  summary,
  tokens,
} from "./helpers.ts";

test("a request prefills, decodes and finishes by length, freeing its blocks", () => {
  const s = createScheduler();
  const a = add(s, "a", 5, { maxTokens: 3 });
  assert.equal(s.numWaiting, 1);
  const r1 = step(s);
  assert.deepEqual(summary(r1.plan), [["a.0", 5, true]]);
  assert.equal(r1.plan.numTokens, 5);
  assert.deepEqual(a.blockIds, [0, 1]);
  assert.equal(a.numComputedTokens, 5);
  assert.deepEqual(a.outputTokenIds, [100]);
  assert.equal(s.numRunning, 1);
  assert.deepEqual(summary(step(s).plan), [["a.0", 1, true]]);
  const r3 = step(s);
  assert.deepEqual(r3.finished, [a]);
  assert.equal(a.status, "finished");
  assert.equal(a.finishReason, "length");
  assert.deepEqual(a.outputTokenIds, [100, 101, 102]);
  assert.deepEqual(a.blockIds, []);
  assert.equal(s.numFreeBlocks, 10);
  assert.equal(s.hasUnfinished(), false);
  assert.equal(s.getRequest("a"), undefined);
  assert.equal(s.schedule().items.length, 0);
});

test("stop conditions: eos, minTokens, ignoreEos, stopTokenIds, maxModelLen", () => {
  const always = (tok: number) => (_: Sequence) => tok;
  {
    const s = createScheduler();
    const a = add(s, "a", 3);
    const seen = runToCompletion(s, 100, (q) => (q.numOutputTokens === 1 ? EOS : 7));
    assert.deepEqual(seen, [a]);
    assert.equal(a.finishReason, "stop");
    assert.equal(a.stopTokenId, EOS);
    assert.deepEqual(a.outputTokenIds, [7, EOS]);
  }
  {
    const s = createScheduler();
    const a = add(s, "a", 3, { minTokens: 3 });
    runToCompletion(s, 100, always(EOS));
    assert.equal(a.finishReason, "stop");
    assert.equal(a.numOutputTokens, 3);
  }
  {
    const s = createScheduler();
    const a = add(s, "a", 3, { ignoreEos: true, maxTokens: 4 });
    runToCompletion(s, 100, always(EOS));
    assert.equal(a.finishReason, "length");
    assert.equal(a.numOutputTokens, 4);
  }
  {
    const s = createScheduler();
    const a = add(s, "a", 3, { stopTokenIds: [7], ignoreEos: true });
    runToCompletion(s, 100, always(7));
    assert.equal(a.finishReason, "stop");
    assert.equal(a.stopTokenId, 7);
  }
  {
    const s = createScheduler({ maxModelLen: 10 });
    const a = add(s, "a", 8, { maxTokens: 100 });
    runToCompletion(s);
    assert.equal(a.finishReason, "length");
    assert.equal(a.tokenIds.length, 10);
  }
});

test("prefix caching: a request sharing 2 full blocks reuses them and computes only its new tokens", () => {
  const s = createScheduler();
  const shadow = new ShadowKv(10, 4);
  const a = add(s, "a", tokens(1, 10), { maxTokens: 20 });
  step(s, undefined, shadow);
  assert.deepEqual(a.blockIds, [0, 1, 2]);
  const b = add(s, "b", [...tokens(1, 8), 50, 51, 52]);
  const plan = s.schedule();
  s.checkInvariants();
  assert.deepEqual(summary(plan), [
    ["a.0", 1, true],
    ["b.0", 3, true],
  ]);
  assert.equal(b.numComputedTokens, 8);
  assert.deepEqual(b.blockIds, [0, 1, 3]);
  assert.equal(b.request.numCachedTokens, 8);
  assert.equal(s.kv.pool.refCount(0), 2);
  assert.deepEqual(s.prefixCacheStats, { queries: 10 + 11, hits: 8 });
  shadow.apply(plan);
  s.update(
    plan,
    new Map([
      [a, 9],
      [b, 9],
    ]),
  );
  s.checkInvariants();
  assert.equal(b.numComputedTokens, 11);

  // The last prompt token is always computed: exactly 2 full blocks of a's prompt reuse only 1 block.
  const c = add(s, "c", tokens(1, 8));
  const r = step(s, undefined, shadow);
  assert.deepEqual(summary(r.plan).at(-1), ["c.0", 4, true]);
  assert.equal(c.request.numCachedTokens, 4);
  assert.equal(c.blockIds[0], 0);

  // A different cache salt never hits.
  const d = add(s, "d", tokens(1, 10), { cacheSalt: "other" });
  step(s, undefined, shadow);
  assert.equal(d.request.numCachedTokens, 0);
  assert.notEqual(d.blockIds[0], 0);
});

test("prefix caching off: identical prompts share nothing", () => {
  const s = createScheduler({ enablePrefixCaching: false });
  add(s, "a", tokens(1, 10));
  step(s);
  const b = add(s, "b", tokens(1, 10));
  step(s);
  assert.equal(b.request.numCachedTokens, 0);
  assert.deepEqual(b.blockIds, [3, 4, 5]);
  assert.deepEqual(s.prefixCacheStats, { queries: 0, hits: 0 });
});

test("n = 2: fork after the first sample, then copy-on-write of the shared partial block", () => {
  const s = createScheduler();
  const shadow = new ShadowKv(10, 4);
  const a = add(s, "a", tokens(1, 6), { n: 2, maxTokens: 5 });
  const r1 = step(s, undefined, shadow);
  assert.deepEqual(summary(r1.plan), [["a.0", 6, true]]);
  const [p, c] = a.request.sequences;
  assert.equal(c.index, 1);
  assert.deepEqual(c.blockIds, [0, 1]);
  assert.equal(c.numComputedTokens, 6);
  assert.deepEqual(c.outputTokenIds, [100]);
  assert.equal(s.kv.pool.refCount(0), 2);
  assert.equal(s.kv.pool.refCount(1), 2);

  const plan = s.schedule();
  s.checkInvariants();
  assert.deepEqual(summary(plan), [
    ["a.0", 1, true],
    ["a.1", 1, true],
  ]);
  assert.deepEqual(plan.blockCopies, { src: [1], dst: [2] });
  assert.deepEqual(p.blockIds, [0, 2]);
  assert.deepEqual(c.blockIds, [0, 1]);
  assert.equal(s.kv.pool.refCount(0), 2);
  assert.equal(s.kv.pool.refCount(1), 1);
  assert.equal(s.kv.pool.refCount(2), 1);
  shadow.apply(plan);
  s.update(
    plan,
    new Map([
      [p, 11],
      [c, 12],
    ]),
  );
  s.checkInvariants();
  runToCompletion(s, 100, undefined, shadow);
  assert.deepEqual(p.outputTokenIds, [100, 11, 102, 103, 104]);
  assert.deepEqual(c.outputTokenIds, [100, 12, 102, 103, 104]);
  assert.equal(s.numFreeBlocks, 10);
});

test("chunked prefill: a long prompt is split by the budget while a decode continues", () => {
  const s = createScheduler({ maxNumBatchedTokens: 8, numBlocks: 20, maxModelLen: 64 });
  const shadow = new ShadowKv(20, 4);
  add(s, "a", 3, { maxTokens: 10 });
  assert.deepEqual(summary(step(s, undefined, shadow).plan), [["a.0", 3, true]]);
  const b = add(s, "b", tokens(2000, 20));
  const expected: [string, number, boolean][][] = [
    [
      ["a.0", 1, true],
      ["b.0", 7, false],
    ],
    [
      ["a.0", 1, true],
      ["b.0", 7, false],
    ],
    [
      ["a.0", 1, true],
      ["b.0", 6, true],
    ],
    [
      ["a.0", 1, true],
      ["b.0", 1, true],
    ],
  ];
  for (const e of expected) assert.deepEqual(summary(step(s, undefined, shadow).plan), e);
  assert.deepEqual(b.outputTokenIds, [100, 101]);
});

test("preemption: the newest running sequence is preempted, goes to the front of waiting, and completes", () => {
  const s = createScheduler({ numBlocks: 4, maxNumBatchedTokens: 32 });
  const shadow = new ShadowKv(4, 4);
  const a = add(s, "a", tokens(100, 8), { maxTokens: 3 });
  const b = add(s, "b", tokens(200, 8), { maxTokens: 3 });
  assert.deepEqual(summary(step(s, undefined, shadow).plan), [
    ["a.0", 8, true],
    ["b.0", 8, true],
  ]);
  assert.deepEqual(b.blockIds, [2, 3]);
  const c = add(s, "c", tokens(300, 4), { maxTokens: 1 });

  // a needs a third block; the pool is full: b (newest) is preempted, tail block first.
  const r2 = step(s, undefined, shadow);
  assert.deepEqual(r2.plan.preempted, [b]);
  assert.deepEqual(summary(r2.plan), [["a.0", 1, true]]);
  assert.deepEqual(a.blockIds, [0, 1, 3]);
  assert.equal(b.status, "waiting");
  assert.equal(b.numComputedTokens, 0);
  assert.deepEqual(b.outputTokenIds, [100]); // kept: recomputed, not resampled
  assert.deepEqual(s.waitingSeqs(), [b, c]); // front, ahead of the older waiting c
  assert.equal(s.numPreemptions, 1);

  // b does not fit yet, and c may not overtake it.
  assert.deepEqual(summary(step(s, undefined, shadow).plan), [["a.0", 1, true]]);
  assert.equal(a.status, "finished");

  // b comes back: its head block (2) was still cached, its tail block (3) had been evicted.
  const r4 = step(s, undefined, shadow);
  assert.deepEqual(summary(r4.plan), [
    ["b.0", 5, true],
    ["c.0", 4, true],
  ]);
  assert.equal(b.blockIds[0], 2);
  runToCompletion(s, 100, undefined, shadow);
  assert.deepEqual(b.outputTokenIds, [100, 101, 102]);
  assert.equal(b.finishReason, "length");
  assert.equal(b.numPreemptions, 1);
  assert.equal(b.request.numCachedTokens, 0);
  assert.equal(s.numFreeBlocks, 4);
});

test("preemption with priorities picks the least important sequence, not the newest", () => {
  const s = createScheduler({ numBlocks: 6, maxNumBatchedTokens: 32 });
  const a = add(s, "a", tokens(100, 8), { priority: 0 });
  const b = add(s, "b", tokens(200, 8), { priority: 5 });
  const c = add(s, "c", tokens(300, 8), { priority: 0 });
  assert.deepEqual(summary(step(s).plan), [
    ["a.0", 8, true],
    ["c.0", 8, true],
    ["b.0", 8, true],
  ]);
  const r2 = step(s);
  assert.deepEqual(r2.plan.preempted, [b]);
  assert.deepEqual(summary(r2.plan), [
    ["a.0", 1, true],
    ["c.0", 1, true],
  ]);
  assert.deepEqual(s.waitingSeqs(), [b]);
  assert.equal(c.status, "running");
  assert.equal(a.status, "running");
});

test("waiting order: lower priority value first, then arrival", () => {
  const s = createScheduler({ maxNumSeqs: 1 });
  const low = add(s, "low", 3, { priority: 3, maxTokens: 1 });
  const high = add(s, "high", 3, { priority: 0, maxTokens: 1 });
  const high2 = add(s, "high2", 3, { priority: 0, maxTokens: 1 });
  assert.deepEqual(s.waitingSeqs(), [high, high2, low]);
  const order = runToCompletion(s);
  assert.deepEqual(order, [high, high2, low]);
});

test("rejection: prompt + 1 > maxModelLen, more blocks than the pool, bad n, empty, duplicate", () => {
  const s = createScheduler({ maxModelLen: 10, numBlocks: 3 });
  assert.throws(
    () => add(s, "a", 10),
    (e: unknown) => {
      assert.ok(e instanceof RequestRejectedError);
      assert.match(e.message, /10 tokens.*11.*maxModelLen 10/);
      return true;
    },
  );
  add(s, "ok", 9);
  const t = createScheduler({ maxModelLen: 40, numBlocks: 3 });
  assert.throws(() => add(t, "a", 12), /needs 4 KV blocks.*holds 3/);
  add(t, "b", 11); // 12 tokens = 3 blocks: fits
  assert.throws(() => add(t, "c", 4, { n: 5 }), RequestRejectedError);
  assert.throws(() => add(t, "d", []), /empty/);
  assert.throws(() => add(t, "b", 4), /already in use/);
  t.checkInvariants();
});

test("maxNumSeqs caps running sequences; an n > 1 request books its n slots at admission", () => {
  const s = createScheduler({ maxNumSeqs: 3 });
  const a = add(s, "a", 4, { n: 2 });
  const b = add(s, "b", 4, { n: 2 });
  const c = add(s, "c", 4);
  assert.deepEqual(summary(step(s).plan), [["a.0", 4, true]]);
  assert.equal(s.numRunning, 2); // a.0 and its fork a.1
  assert.deepEqual(s.waitingSeqs(), [b, c]);
  step(s);
  assert.equal(s.numRunning, 2); // b needs 2 slots, c may not overtake it
  s.abortRequest("a");
  assert.equal(
    a.request.sequences.every((q) => q.finishReason === "abort"),
    true,
  );
  step(s);
  assert.equal(s.numRunning, 3); // b.0, b.1, c.0
});

test("abort: waiting and running sequences, all children, unknown id", () => {
  const s = createScheduler({ maxNumSeqs: 2 });
  const a = add(s, "a", 6, { n: 2 });
  const b = add(s, "b", 6);
  step(s);
  assert.equal(s.numRunning, 2);
  assert.deepEqual(s.abortRequest("b"), [b]);
  assert.equal(b.finishReason, "abort");
  const aborted = s.abortRequest("a");
  assert.equal(aborted.length, 2);
  assert.ok(aborted.every((q) => q.status === "finished" && q.finishReason === "abort"));
  assert.equal(a.status, "finished");
  assert.deepEqual(s.abortRequest("nope"), []);
  assert.deepEqual(s.abortRequest("a"), []);
  assert.equal(s.numFreeBlocks, 10);
  assert.equal(s.hasUnfinished(), false);
  s.checkInvariants();
});

test("abort while a plan is in flight keeps the blocks until update", () => {
  const s = createScheduler();
  const a = add(s, "a", 6);
  const plan = s.schedule();
  s.abortRequest("a");
  assert.equal(a.status, "finished");
  assert.equal(s.numFreeBlocks, 8); // the forward pass may still be writing them
  s.checkInvariants();
  assert.deepEqual(s.update(plan, new Map()), []);
  assert.equal(s.numFreeBlocks, 10);
  s.checkInvariants();
  // A fork of an aborted sequence does nothing.
  assert.deepEqual(s.fork(a, 1), []);
});

test("finishSequence (stop string seen by the client) frees the sequence", () => {
  const s = createScheduler();
  const a = add(s, "a", 6);
  step(s);
  s.finishSequence(a, "stop");
  assert.equal(a.finishReason, "stop");
  assert.equal(s.numRunning, 0);
  assert.equal(s.numFreeBlocks, 10);
  s.finishSequence(a, "abort"); // no-op
  assert.equal(a.finishReason, "stop");
  s.checkInvariants();
});

test("a sequence that can never fit the pool, even alone, is finished with length", () => {
  const s = createScheduler({ numBlocks: 3, maxModelLen: 40 });
  const a = add(s, "a", 10, { maxTokens: 30 });
  const finished: Sequence[] = [];
  for (let i = 0; i < 10 && s.hasUnfinished(); i++) {
    const r = step(s);
    finished.push(...r.plan.finished, ...r.finished);
  }
  assert.deepEqual(finished, [a]);
  assert.equal(a.finishReason, "length");
  assert.equal(a.tokenIds.length, 13); // 12 tokens fill 3 blocks; the 13th's KV has nowhere to go
  assert.equal(s.numFreeBlocks, 3);
});

test("update requires a token for every sampling sequence and the plan from the last schedule", () => {
  const s = createScheduler();
  add(s, "a", 3);
  const plan = s.schedule();
  assert.throws(() => s.schedule(), /update/);
  assert.throws(() => s.update(plan, new Map()), /no sampled token/);
  s.update(plan, new Map([[plan.items[0].seq, 5]]));
  assert.throws(() => s.update(plan, new Map([[plan.items[0].seq, 5]])), /not the plan/);
  s.checkInvariants();
});

test("Request defaults", () => {
  const r = createRequest("x", 3);
  assert.equal(r.priority, 0);
  assert.equal(r.cacheSalt, null);
  assert.equal(r.numCachedTokens, 0);
  assert.deepEqual(r.sequences, []);
});

test("preempting sequences that just copied-on-write: the copy is dropped, its source held then freed", () => {
  const s = createScheduler({ numBlocks: 5, maxNumBatchedTokens: 8 });
  const shadow = new ShadowKv(5, 4);
  const l0 = add(s, "low", tokens(100, 10), { n: 2, priority: 5, maxTokens: 4 });
  assert.deepEqual(summary(step(s, undefined, shadow).plan), [["low.0", 8, false]]);
  const h = add(s, "high", tokens(200, 4), { priority: 0, maxTokens: 4 });
  assert.deepEqual(summary(step(s, undefined, shadow).plan), [
    ["low.0", 2, true],
    ["high.0", 4, true],
  ]);
  const l1 = l0.request.sequences[1];
  assert.deepEqual(l1.blockIds, [0, 1, 2]);
  assert.equal(s.numFreeBlocks, 1);
  // low.0 copies block 2 → 4; high needs a block: low.1 goes first (its block 2 is held by the pending
  // copy), then low.0 (dropping its copy and releasing block 2).
  const r = step(s, undefined, shadow);
  assert.deepEqual(r.plan.preempted, [l1, l0]);
  assert.deepEqual(r.plan.blockCopies, { src: [], dst: [] });
  assert.deepEqual(summary(r.plan), [["high.0", 1, true]]);
  assert.deepEqual(h.blockIds, [3, 2]);
  assert.deepEqual(s.kv.pool.freeQueue(), [4, 1, 0]);
  assert.deepEqual(s.waitingSeqs(), [l0, l1]);
  runToCompletion(s, 100, undefined, shadow);
  assert.deepEqual(l0.outputTokenIds, [100, 101, 102, 103]);
  assert.deepEqual(l1.outputTokenIds, [100, 101, 102, 103]);
  assert.ok(s.prefixCacheStats.hits >= 8);
  assert.equal(s.numFreeBlocks, 5);
});

test("identical prompts admitted in the same step share blocks registered that step", () => {
  const s = createScheduler();
  const shadow = new ShadowKv(10, 4);
  const a = add(s, "a", tokens(1, 9));
  const b = add(s, "b", tokens(1, 9));
  const r = step(s, undefined, shadow);
  assert.deepEqual(summary(r.plan), [
    ["a.0", 9, true],
    ["b.0", 1, true],
  ]);
  assert.deepEqual(b.blockIds, [0, 1, 3]);
  assert.equal(b.request.numCachedTokens, 8);
  assert.deepEqual(a.blockIds, [0, 1, 2]);
});
