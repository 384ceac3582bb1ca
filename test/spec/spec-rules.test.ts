/**
 * Speculative decoding over the rule model (test/spec/rule-model.ts): the outputs are predictable, so a
 * stop token can be placed inside an accepted run and the engine's speculative sampling can be checked
 * against the target distribution, token by token.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { CoreRequest, EngineCore } from "../../src/engine/engine-core.ts";
import type { SamplingParams, SeqDelta } from "../../src/engine/types.ts";
import { normalizeSamplingParams } from "../../src/sampler/params.ts";
import { collect, drain } from "../engine/helpers.ts";
import { chiSquareCritical } from "./chi-square.ts";
import { counting, RULE_EOS, RULE_VOCAB, type Rule, ruleCore } from "./rule-model.ts";

function req(id: string, prompt: number[], p: Partial<SamplingParams>): CoreRequest {
  return {
    id,
    promptTokenIds: prompt,
    params: normalizeSamplingParams({ temperature: 0, ...p }, { vocabSize: RULE_VOCAB, defaultMaxTokens: 16 }),
  };
}

/** Outputs, finish reasons and stop tokens per request: everything a client sees. */
function visible(core: EngineCore, reqs: CoreRequest[]): Map<string, unknown> {
  for (const r of reqs) core.addRequest(r);
  const out = drain(core, () => core.scheduler.checkInvariants());
  const m = new Map<string, unknown>();
  for (const r of reqs) {
    const end = out.deltas.find((d: SeqDelta) => d.requestId === r.id && d.finishReason);
    m.set(r.id, { tokens: out.tokens.get(r.id), reasons: out.reasons.get(r.id), stop: end?.stopTokenId });
  }
  assert.equal(core.stats().kvBlocksUsed, 0);
  return m;
}

/** Counts up, but 40 is followed by EOS. */
const withEos: Rule = (t, p) => (t === 40 ? RULE_EOS : counting(t, p));
/** A draft that is wrong at every third position. */
const sloppy: Rule = (t, p) => (p % 3 === 0 ? counting(counting(t, p), p) : counting(t, p));

const DRAFTS: [string, Rule | "ngram"][] = [
  ["exact draft", withEos],
  ["sloppy draft", sloppy],
  ["ngram", "ngram"],
];

test("stop tokens, EOS, min_tokens, max_tokens and max_model_len cut accepted runs exactly as without speculation", () => {
  const reqs = () => [
    req("stop", [10, 11, 12], { maxTokens: 30, stopTokenIds: [20] }),
    req("stop2", [10, 11, 12], { maxTokens: 30, stopTokenIds: [25, 17] }),
    req("min", [10, 11, 12], { maxTokens: 30, stopTokenIds: [20], minTokens: 9 }),
    req("eos", [30, 31], { maxTokens: 30 }),
    req("ignoreEos", [30, 31], { maxTokens: 20, ignoreEos: true }),
    req("max", [5, 6, 7], { maxTokens: 11 }),
    req("len", [3, 4, 5, 6, 7, 8, 9, 10], { maxTokens: 100 }), // maxModelLen 40: 32 outputs
    req("rep", [50, 51, 52, 50, 51, 52, 50], { maxTokens: 25, ignoreEos: true }), // wraps: n-gram hits
  ];
  const expected = visible(ruleCore(withEos, { maxModelLen: 40 }), reqs());
  for (const [name, draft] of DRAFTS) {
    for (const k of [1, 3, 6]) {
      const core = ruleCore(withEos, { maxModelLen: 40, draft, k });
      const got = visible(core, reqs());
      for (const [id, want] of expected) assert.deepEqual(got.get(id), want, `${name}, k=${k}: ${id}`);
      const st = core.stats();
      assert.ok(st.specProposedTokens! > 0, `${name}, k=${k}: speculated`);
      if (name === "exact draft") assert.equal(st.specAcceptedTokens, st.specProposedTokens);
      if (name === "sloppy draft") assert.ok(st.specAcceptedTokens! < st.specProposedTokens!);
    }
  }
  // The stop request's 8 tokens come in few steps with an exact draft.
  const core = ruleCore(withEos, { maxModelLen: 40, draft: withEos, k: 4 });
  core.addRequest(req("stop", [10, 11, 12], { maxTokens: 30, stopTokenIds: [20] }));
  const out = drain(core);
  assert.deepEqual(out.tokens.get("stop")![0], [13, 14, 15, 16, 17, 18, 19, 20]);
  assert.deepEqual(
    out.deltas.map((d) => d.tokenIds.length),
    [1, 5, 2],
    "prefill token, then 4 accepted + bonus, then a run cut at the stop",
  );
});

test("a step emits at most k + 1 tokens; stats count drafts, acceptances and positions", () => {
  const core = ruleCore(counting, { draft: sloppy, k: 4 });
  core.addRequest(req("a", [10], { maxTokens: 40, ignoreEos: true }));
  const out = drain(core);
  assert.deepEqual(
    out.tokens.get("a")![0],
    Array.from({ length: 40 }, (_, i) => 11 + i),
  );
  for (const d of out.deltas) assert.ok(d.tokenIds.length <= 5);
  const st = core.stats();
  assert.equal(st.generationTokens, 40);
  // Every verification emits accepted + 1 tokens; 1 token came from the prefill step.
  assert.equal(st.specAcceptedTokens! + st.specSteps!, 39);
  assert.equal(
    st.specAcceptedPerPosition!.reduce((a, b) => a + b, 0),
    st.specAcceptedTokens,
  );
  assert.ok(st.specAcceptedPerPosition![0] >= st.specAcceptedPerPosition![1]);
});

test("seeded speculative sampling reproduces, and every emitted token follows the target distribution", () => {
  // Target: softmax(8 - 0.75·|v - (t + 1)|) at temperature 1; the draft proposes around t + 2 instead.
  const target = counting;
  const draft: Rule = (t, p) => counting(counting(t, p), p);
  const run = (seed0: number): EngineCore => {
    const core = ruleCore(target, { draft, k: 3, maxNumSeqs: 16 });
    for (let i = 0; i < 1500; i++) {
      core.addRequest(req(`s${i}`, [30], { temperature: 1, seed: seed0 + i, maxTokens: 6, ignoreEos: true }));
    }
    return core;
  };
  const a = collect([]);
  const coreA = run(1);
  drain(coreA, undefined, a);
  const b = drain(run(1));
  assert.deepEqual(b.tokens, a.tokens, "same seeds, same tokens");
  const st = coreA.stats();
  assert.ok(st.specSteps! > 1000 && st.specAcceptedTokens! > 0 && st.specAcceptedTokens! < st.specProposedTokens!);

  // Offsets of each token after the first (those come from speculative steps) from its rule token.
  const w = Array.from({ length: RULE_VOCAB }, (_, v) => v);
  const counts = new Map<number, number>();
  const expect = new Map<number, number>();
  let n = 0;
  for (const [, seqs] of a.tokens) {
    const toks = [30, ...seqs[0]];
    for (let i = 2; i < toks.length; i++) {
      const next = counting(toks[i - 1], 0);
      // Exact target distribution given the previous token.
      const logits = w.map((v) => 8 - 0.75 * Math.abs(v - next));
      const m = Math.max(...logits);
      const ex = logits.map((l) => Math.exp(l - m));
      const z = ex.reduce((s, x) => s + x, 0);
      for (let v = 0; v < RULE_VOCAB; v++) {
        const off = Math.max(-4, Math.min(4, v - next));
        expect.set(off, (expect.get(off) ?? 0) + ex[v] / z);
      }
      const off = Math.max(-4, Math.min(4, toks[i] - next));
      counts.set(off, (counts.get(off) ?? 0) + 1);
      n++;
    }
  }
  let chi = 0;
  for (const [off, e] of expect) chi += ((counts.get(off) ?? 0) - e) ** 2 / e;
  assert.ok(n > 5000);
  assert.ok(chi < chiSquareCritical(expect.size - 1), `chi-square ${chi.toFixed(2)} over ${expect.size} bins`);
});

test("n > 1, preemption and prefix caching with a sloppy draft keep greedy outputs", () => {
  const reqs = () =>
    Array.from({ length: 10 }, (_, i) =>
      req(
        `r${i}`,
        Array.from({ length: 3 + i * 3 }, (_, j) => 3 + ((j * 7 + i) % 50)),
        {
          maxTokens: 6 + i,
          n: 1 + (i % 3),
          ignoreEos: true,
        },
      ),
    );
  const expected = visible(ruleCore(counting, { numBlocks: 40 }), reqs());
  for (const numBlocks of [40, 14]) {
    const core = ruleCore(counting, { numBlocks, draft: sloppy, maxNumBatchedTokens: 16 });
    const got = visible(core, reqs());
    for (const [id, want] of expected) assert.deepEqual(got.get(id), want, `${numBlocks} blocks: ${id}`);
    if (numBlocks === 14) assert.ok(core.stats().numPreemptions > 0);
  }
});
