/**
 * Speculative decoding in the scheduler and KV cache manager (pure bookkeeping): lookahead slots,
 * accepted runs, stop truncation, unused lookahead returned, no hash for a block holding a draft token
 * that was not accepted, and a randomized soak (preemption, forks, prefix hits, aborts) whose shadow KV
 * checks that every sequence reads exactly its own prefix, draft tokens included.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { hashBlock } from "../../src/kv/block-hash.ts";
import { RequestRejectedError, type Scheduler, type StepPlan } from "../../src/scheduler/scheduler.ts";
import type { Sequence } from "../../src/scheduler/sequence.ts";
import { mulberry32 as prng } from "../helpers/mulberry32.ts";
import { add, createRequest, createScheduler, EOS, ShadowKv, tokens } from "../scheduler/helpers.ts";

/** Runs one step where every speculating item proposes `draft(seq, k)` and keeps `accept(seq, drafts)` of them. */
function specStep(
  s: Scheduler,
  k: number,
  draft: (seq: Sequence, k: number) => number[],
  verify: (seq: Sequence, drafts: readonly number[]) => number[],
  shadow?: ShadowKv,
): { plan: StepPlan; finished: Sequence[] } {
  const plan = s.schedule(k);
  s.checkInvariants();
  if (plan.items.length === 0) return { plan, finished: [] };
  for (const it of plan.items) if (it.numSpecTokens > 0) it.specTokenIds = draft(it.seq, it.numSpecTokens);
  shadow?.apply(plan);
  const sampled = new Map<Sequence, number | number[]>();
  for (const it of plan.items) {
    if (!it.sample) continue;
    const due = s.numForksDue(it.seq);
    for (const c of due > 0 ? s.fork(it.seq, due) : []) sampled.set(c, 100 + c.numOutputTokens);
    sampled.set(it.seq, it.numSpecTokens > 0 ? verify(it.seq, it.specTokenIds) : 100 + it.seq.numOutputTokens);
  }
  const finished = s.update(plan, sampled);
  s.checkInvariants();
  checkHashedBlocks(s);
  return { plan, finished };
}

/** Every hashed block in a running sequence's table is full of its computed tokens and carries their hash. */
function checkHashedBlocks(s: Scheduler): void {
  const bs = s.config.blockSize;
  for (const seq of s.runningSeqs) {
    let parent: string | null = null;
    for (let i = 0; i < seq.blockIds.length && (i + 1) * bs <= seq.tokenIds.length; i++) {
      const h = hashBlock(parent, seq.tokenIds, i * bs, bs, seq.cacheSalt);
      parent = h;
      const got = s.kv.pool.hashOf(seq.blockIds[i]);
      if (got === null) continue;
      assert.ok(
        (i + 1) * bs <= seq.numComputedTokens,
        `seq ${seq.seqId}: block ${i} hashed beyond computed tokens (${seq.numComputedTokens} of ${seq.tokenIds.length}, blocks ${seq.blockIds}, refs ${seq.blockIds.map((b) => s.kv.pool.refCount(b))}, n=${seq.request.params.n} index ${seq.index})`,
      );
      assert.equal(got, h, `seq ${seq.seqId}: block ${i} hashed with other content`);
    }
    for (let i = Math.floor(seq.tokenIds.length / bs); i < seq.blockIds.length; i++) {
      assert.equal(s.kv.pool.hashOf(seq.blockIds[i]), null, `seq ${seq.seqId}: partial block ${i} hashed`);
    }
  }
}

const drafts = (seq: Sequence, k: number) => tokens(500 + seq.numOutputTokens, k);
const acceptN = (n: number) => (_seq: Sequence, d: readonly number[]) => [...d.slice(0, n), 900];

test("a decode step reserves k lookahead slots and budget; prefill items never speculate", () => {
  const s = createScheduler({ blockSize: 4, numBlocks: 20, maxNumBatchedTokens: 16 });
  const a = add(s, "a", 6, { maxTokens: 20 });
  specStep(s, 3, drafts, acceptN(0)); // prefill: a gets its first token
  add(s, "b", 30); // will be chunked
  const plan = s.schedule(3);
  assert.equal(plan.items[0].seq, a);
  assert.equal(plan.items[0].numNewTokens, 1);
  assert.equal(plan.items[0].numSpecTokens, 3);
  assert.equal(plan.items[1].numSpecTokens, 0);
  assert.equal(plan.items[1].numNewTokens, 16 - 4);
  assert.equal(plan.numTokens, 16);
  // a: 7 tokens, position 6 is the decode token, lookahead 7..9 → blocks for 10 tokens
  assert.equal(a.blockIds.length, 3);
  s.update(plan, new Map<Sequence, number | number[]>([[a, [900]]]));
  assert.equal(a.blockIds.length, 2, "unused lookahead block returned");
  s.checkInvariants();
});

test("accepted draft tokens count as computed; the rest of the lookahead is returned to the free queue head", () => {
  const s = createScheduler({ blockSize: 4, numBlocks: 20 });
  const a = add(s, "a", 5, { maxTokens: 20 });
  specStep(s, 4, drafts, acceptN(0)); // 6 tokens, 5 computed
  const plan = s.schedule(4);
  assert.equal(plan.items[0].numSpecTokens, 4);
  assert.equal(a.blockIds.length, 3); // positions 5..9
  const lookaheadBlock = a.blockIds[2];
  plan.items[0].specTokenIds = [501, 502, 503, 504];
  s.update(plan, new Map<Sequence, number | number[]>([[a, [501, 502, 77]]]));
  assert.deepEqual(a.outputTokenIds, [100, 501, 502, 77]);
  assert.equal(a.numComputedTokens, 8); // 5 + decode token + 2 accepted
  assert.equal(a.blockIds.length, 2);
  assert.equal(s.kv.pool.freeQueue()[0], lookaheadBlock, "an unused lookahead block is allocated next");
  s.checkInvariants();
});

test("blocks are hashed only once all their tokens are accepted", () => {
  const s = createScheduler({ blockSize: 4, numBlocks: 20 });
  const a = add(s, "a", 3, { maxTokens: 30 });
  specStep(s, 4, drafts, acceptN(0)); // tokens 0..3, 3 computed
  // Step: decode token 3 + drafts at 4..7. Reject all: block 1 (4..7) holds only rejected drafts.
  let plan = s.schedule(4);
  plan.items[0].specTokenIds = [11, 12, 13, 14];
  s.update(plan, new Map<Sequence, number | number[]>([[a, [21]]]));
  assert.equal(a.numComputedTokens, 4);
  assert.notEqual(s.kv.pool.hashOf(a.blockIds[0]), null, "block 0 is full of computed tokens");
  assert.equal(a.blockIds.length, 1);
  // Step: decode 21 (pos 4) + drafts at 5..8; accept 2 → computed 7: block 1 not full yet, no hash.
  plan = s.schedule(4);
  plan.items[0].specTokenIds = [31, 32, 33, 34];
  s.update(plan, new Map<Sequence, number | number[]>([[a, [31, 32, 40]]]));
  assert.equal(a.numComputedTokens, 7);
  assert.equal(a.blockIds.length, 2);
  assert.equal(s.kv.pool.hashOf(a.blockIds[1]), null);
  // Step: decode 40 (pos 7) + drafts 8..11; accept all 4 → computed 12: blocks 1 and 2 full and hashed.
  plan = s.schedule(4);
  plan.items[0].specTokenIds = [41, 42, 43, 44];
  s.update(plan, new Map<Sequence, number | number[]>([[a, [41, 42, 43, 44, 50]]]));
  assert.equal(a.numComputedTokens, 12);
  assert.equal(a.blockIds.length, 3);
  checkHashedBlocks(s);
  assert.notEqual(s.kv.pool.hashOf(a.blockIds[1]), null);
  assert.notEqual(s.kv.pool.hashOf(a.blockIds[2]), null);
  // A later prompt with the same 12 tokens reuses all three blocks.
  const b = add(s, "b", [...a.tokenIds.slice(0, 12), 7]);
  specStep(s, 0, drafts, acceptN(0));
  assert.deepEqual(b.blockIds.slice(0, 3), a.blockIds.slice(0, 3));
  assert.equal(b.request.numCachedTokens, 12);
});

test("a stop token inside the accepted run ends the sequence there; max_tokens and maxModelLen cap k", () => {
  const s = createScheduler({ blockSize: 4, numBlocks: 20, maxModelLen: 40 });
  const a = add(s, "a", 5, { maxTokens: 20, stopTokenIds: [502] });
  specStep(s, 4, drafts, acceptN(0));
  const plan = s.schedule(4);
  plan.items[0].specTokenIds = [501, 502, 503, 504];
  const done = s.update(plan, new Map<Sequence, number | number[]>([[a, [501, 502, 503, 9]]]));
  assert.deepEqual(done, [a]);
  assert.deepEqual(a.outputTokenIds, [100, 501, 502]);
  assert.equal(a.finishReason, "stop");
  assert.equal(a.stopTokenId, 502);
  assert.equal(s.numFreeBlocks, 20);

  // max_tokens 4: after 1 output, at most 4 - 1 - 1 = 2 draft tokens.
  const b = add(s, "b", 5, { maxTokens: 4 });
  specStep(s, 8, drafts, acceptN(0));
  let p = s.schedule(8);
  assert.equal(p.items[0].numSpecTokens, 2);
  p.items[0].specTokenIds = [11, 12];
  assert.deepEqual(s.update(p, new Map<Sequence, number | number[]>([[b, [11, 12, 13]]])), [b]);
  assert.equal(b.numOutputTokens, 4);
  assert.equal(b.finishReason, "length");

  // maxModelLen 40, 36 prompt tokens: 37 tokens after the first step → at most 40 - 37 - 1 = 2 drafts.
  const c = add(s, "c", 36, { maxTokens: 100 });
  while (c.numOutputTokens === 0) specStep(s, 8, drafts, acceptN(0)); // chunked prefill
  specStep(s, 8, drafts, acceptN(0));
  p = s.schedule(8);
  assert.equal(c.tokenIds.length, 38);
  assert.equal(p.items[0].numSpecTokens, 1);
  p.items[0].specTokenIds = [5];
  assert.deepEqual(s.update(p, new Map<Sequence, number | number[]>([[c, [5, 6]]])), [c]);
  assert.equal(c.tokenIds.length, 40);
  assert.equal(c.finishReason, "length");
  s.checkInvariants();
});

test("speculation never preempts: without free blocks for the lookahead the step is a plain decode", () => {
  const s = createScheduler({ blockSize: 4, numBlocks: 4, maxModelLen: 16, maxNumSeqs: 2 });
  const a = add(s, "a", tokens(10, 7), { maxTokens: 8 });
  const b = add(s, "b", tokens(20, 7), { maxTokens: 8 });
  specStep(s, 0, drafts, acceptN(0)); // both prefilled: 8 tokens each → 2 blocks each, pool full
  assert.equal(s.numFreeBlocks, 0);
  const plan = s.schedule(3);
  assert.equal(plan.preempted.length, 0);
  assert.deepEqual(
    plan.items.map((it) => [it.seq, it.numSpecTokens]),
    [
      [a, 0],
      [b, 0],
    ],
  );
});

test("update rejects a run that is not a prefix of the draft tokens, before changing anything", () => {
  const s = createScheduler();
  const a = add(s, "a", 5, { maxTokens: 20 });
  specStep(s, 2, drafts, acceptN(0));
  const plan = s.schedule(2);
  plan.items[0].specTokenIds = [7, 8];
  assert.throws(() => s.update(plan, new Map<Sequence, number | number[]>([[a, [8, 9]]])), /not its draft token/);
  assert.throws(() => s.update(plan, new Map<Sequence, number | number[]>([[a, [7, 8, 9, 10]]])), /verified 2/);
  assert.equal(a.numOutputTokens, 1);
  s.update(plan, new Map<Sequence, number | number[]>([[a, [7, 8, 9]]]));
  assert.equal(a.numOutputTokens, 4);
});

test("randomized soak with speculation: preemption, forks, prefix hits, aborts; shadow KV and invariants hold", () => {
  for (const seed of [1, 2, 3]) {
    const rnd = prng(seed);
    const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
    const s = createScheduler({ blockSize: 4, numBlocks: 24, maxNumSeqs: 6, maxNumBatchedTokens: 24, maxModelLen: 48 });
    const shadow = new ShadowKv(24, 4);
    const prefixes = [0, 1, 2].map((k) => tokens(10 + k * 100, 16));
    const live: string[] = [];
    let specItems = 0;
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      if (rnd() < 0.3) {
        const id = `r${i}`;
        const prompt = [
          ...prefixes[int(0, 2)].slice(0, int(0, 16)),
          ...Array.from({ length: int(1, 6) }, () => int(3, 99)),
        ];
        try {
          s.addRequest(
            createRequest(id, prompt, {
              n: int(1, 3),
              maxTokens: int(1, 24),
              stopTokenIds: rnd() < 0.2 ? [505] : [],
              cacheSalt: rnd() < 0.1 ? "x" : null,
            }),
          );
          live.push(id);
        } catch (e) {
          assert.ok(e instanceof RequestRejectedError);
        }
      }
      if (live.length > 0 && rnd() < 0.02) s.abortRequest(live[int(0, live.length - 1)]);
      const k = int(0, 5);
      const { plan } = specStep(
        s,
        k,
        (seq, n) => {
          // Drafts that repeat across sequences, so accepted runs fill blocks that later prompts share.
          const out = tokens(500 + (seq.numOutputTokens % 7), int(0, n));
          return out;
        },
        (_seq, d) => {
          const a = int(0, d.length);
          accepted += a;
          return [...d.slice(0, a), rnd() < 0.05 ? EOS : int(3, 99)];
        },
        shadow,
      );
      for (const it of plan.items) {
        assert.ok(it.specTokenIds.length <= it.numSpecTokens);
        if (it.numSpecTokens > 0) specItems++;
      }
      for (let j = live.length - 1; j >= 0; j--) if (s.getRequest(live[j]) === undefined) live.splice(j, 1);
    }
    for (const id of live) s.abortRequest(id);
    s.checkInvariants();
    assert.equal(s.numFreeBlocks, 24);
    assert.ok(specItems > 500 && accepted > 500, `speculation exercised (${specItems} items, ${accepted} accepted)`);
    assert.ok(s.numPreemptions > 0, "preemption exercised");
    assert.ok(s.prefixCacheStats.hits > 0, "prefix hits exercised");
  }
});
