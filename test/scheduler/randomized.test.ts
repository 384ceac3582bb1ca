/**
 * Randomized soak: random arrivals (shared prefixes, salts, n in 1..3, priorities, max/min tokens), random
 * aborts (some while a plan is in flight) and client-side finishes, fake sampling with occasional EOS,
 * and a pool small enough to preempt. After every step: scheduler + KV invariants, and the shadow KV
 * check that each sequence reads exactly its own prefix's KV. At the end everything is aborted and every
 * block must be free.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RequestRejectedError, type Scheduler, type SchedulerConfig } from "../../src/scheduler/scheduler.ts";
import type { Sequence } from "../../src/scheduler/sequence.ts";
import { mulberry32 as prng } from "../helpers/mulberry32.ts";
import { createRequest, createScheduler, EOS, ShadowKv } from "./helpers.ts";

interface SoakResult {
  finished: number;
  rejected: number;
  preemptions: number;
  hits: number;
  copies: number;
  capacityFinishes: number;
}

function soak(config: Partial<SchedulerConfig>, steps: number, seed: number): SoakResult {
  const rnd = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const s: Scheduler = createScheduler(config);
  const cfg = s.config;
  const shadow = new ShadowKv(cfg.numBlocks, cfg.blockSize);
  const prefixes = [0, 1, 2, 3].map((k) => Array.from({ length: 20 }, (_, i) => 10 + k * 100 + i));
  const live: string[] = [];
  const outputs = new Map<Sequence, number[]>();
  const res: SoakResult = { finished: 0, rejected: 0, preemptions: 0, hits: 0, copies: 0, capacityFinishes: 0 };
  let nextId = 0;

  let inFlight = false;
  const clientFinished = new Set<Sequence>();
  const checkFinished = (seq: Sequence) => {
    assert.equal(seq.status, "finished");
    if (!inFlight) assert.deepEqual(seq.blockIds, []); // mid-step aborts free their blocks in update()
    if (seq.finishReason !== "abort") assert.deepEqual(seq.outputTokenIds, outputs.get(seq) ?? []);
    const p = seq.request.params;
    if (seq.finishReason === "stop" && !clientFinished.has(seq)) {
      assert.ok(seq.numOutputTokens >= p.minTokens);
      assert.ok(seq.stopTokenId === EOS || p.stopTokenIds.includes(seq.stopTokenId!));
    }
    if (seq.finishReason === "length") {
      assert.ok(
        seq.numOutputTokens >= p.maxTokens ||
          seq.tokenIds.length >= cfg.maxModelLen ||
          Math.ceil(seq.tokenIds.length / cfg.blockSize) > cfg.numBlocks,
        `length: ${seq.numOutputTokens}/${p.maxTokens} outputs, ${seq.tokenIds.length} tokens`,
      );
    }
    res.finished++;
  };
  const abort = (id: string) => {
    for (const q of s.abortRequest(id)) checkFinished(q);
  };

  for (let i = 0; i < steps; i++) {
    // Arrivals.
    if (rnd() < 0.35) {
      const prefix = prefixes[int(0, 3)].slice(0, int(0, 20));
      const suffix = Array.from({ length: int(1, 8) }, () => int(3, 999));
      const id = `r${nextId++}`;
      const req = createRequest(id, [...prefix, ...suffix], {
        n: int(1, 3),
        maxTokens: int(1, 20),
        minTokens: rnd() < 0.1 ? int(0, 3) : 0,
        priority: int(0, 2),
        cacheSalt: rnd() < 0.2 ? "salt" : null,
        stopTokenIds: rnd() < 0.1 ? [7] : [],
        ignoreEos: rnd() < 0.05,
      });
      try {
        s.addRequest(req);
        live.push(id);
      } catch (e) {
        assert.ok(e instanceof RequestRejectedError);
        res.rejected++;
      }
    }
    // Aborts and client-side finishes between steps.
    if (live.length > 0 && rnd() < 0.03) abort(live[int(0, live.length - 1)]);
    if (live.length > 0 && rnd() < 0.01) {
      const req = s.getRequest(live[int(0, live.length - 1)]);
      const q = req?.sequences.find((x) => x.status !== "finished");
      if (q) {
        clientFinished.add(q);
        s.finishSequence(q, "stop");
        checkFinished(q);
      }
    }
    s.checkInvariants();

    const plan = s.schedule();
    s.checkInvariants();
    res.preemptions += plan.preempted.length;
    res.copies += plan.blockCopies.src.length;
    for (const q of plan.finished) {
      res.capacityFinishes++;
      checkFinished(q);
    }
    if (plan.items.length === 0) {
      assert.ok(!s.hasUnfinished() || s.numRunning > 0 || false, "empty plan with unfinished work");
      continue;
    }
    assert.ok(plan.numTokens <= cfg.maxNumBatchedTokens);
    assert.ok(plan.items.length <= cfg.maxNumSeqs);
    shadow.apply(plan);
    const sampled = new Map<Sequence, number>();
    const sample = (q: Sequence) => {
      const tok = rnd() < 0.06 ? EOS : int(3, 999);
      sampled.set(q, tok);
      const out = outputs.get(q) ?? [];
      out.push(tok);
      outputs.set(q, out);
    };
    for (const it of plan.items) {
      if (!it.sample) continue;
      const due = s.numForksDue(it.seq);
      if (due > 0) {
        for (const c of s.fork(it.seq, due)) {
          outputs.set(c, [...(outputs.get(it.seq) ?? [])]);
          sample(c);
        }
      }
      sample(it.seq);
    }
    // Occasionally abort a request mid-step (between the forward pass and update).
    inFlight = true;
    if (live.length > 0 && rnd() < 0.01) abort(live[int(0, live.length - 1)]);
    inFlight = false;
    for (const q of s.update(plan, sampled)) checkFinished(q);
    s.checkInvariants();
    for (let k = live.length - 1; k >= 0; k--) if (s.getRequest(live[k]) === undefined) live.splice(k, 1);
  }
  for (const id of [...live]) abort(id);
  s.checkInvariants();
  assert.equal(s.hasUnfinished(), false);
  assert.equal(s.numFreeBlocks, cfg.numBlocks);
  assert.equal(s.kv.numLiveSequences, 0);
  res.hits = s.prefixCacheStats.hits;
  return res;
}

test("randomized continuous scheduling: 10,000 steps with preemption, forks, prefix hits and aborts", () => {
  const r = soak({ numBlocks: 20, blockSize: 4, maxNumSeqs: 6, maxNumBatchedTokens: 24, maxModelLen: 48 }, 10_000, 1);
  assert.ok(r.preemptions > 50, `preemptions ${r.preemptions}`);
  assert.ok(r.hits > 1000, `prefix hits ${r.hits}`);
  assert.ok(r.copies > 50, `copy-on-write copies ${r.copies}`);
  assert.ok(r.finished > 1000, `finished ${r.finished}`);
});

test("randomized: a pool smaller than maxModelLen (capacity finishes), no prefix caching", () => {
  const r = soak(
    { numBlocks: 9, blockSize: 4, maxNumSeqs: 4, maxNumBatchedTokens: 16, maxModelLen: 48, enablePrefixCaching: false },
    3_000,
    2,
  );
  assert.ok(r.preemptions > 10, `preemptions ${r.preemptions}`);
  assert.ok(r.capacityFinishes > 0, `capacity finishes ${r.capacityFinishes}`);
  assert.equal(r.hits, 0);
});

test("randomized static and naive policies", () => {
  const st = soak(
    { policy: "static", numBlocks: 20, maxNumSeqs: 6, maxNumBatchedTokens: 24, maxModelLen: 48 },
    2_000,
    3,
  );
  assert.ok(st.finished > 100);
  const nv = soak(
    { policy: "naive", numBlocks: 40, maxNumSeqs: 4, maxNumBatchedTokens: 32, maxModelLen: 28 },
    2_000,
    4,
  );
  assert.ok(nv.finished > 100);
  assert.equal(nv.preemptions, 0);
  assert.equal(nv.hits, 0);
});
