/**
 * Speculative decoding end to end on the small random fixture models (reference backend, so results are
 * bit-exact whatever the batch): greedy outputs never change, with a draft model (the target itself: every
 * draft token must be accepted, which also proves the draft's KV is right after prefix hits, copy-on-write
 * and preemption; another model: almost everything is rejected) or n-gram lookup; stops inside an
 * logprobs; seeded sampling; auto-off; accepted tokens reach the prefix cache. (Stops inside an accepted
 * run and the sampled distribution: spec-rules.test.ts.)
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { CoreRequest, EngineCore } from "../../src/engine/engine-core.ts";
import type { EngineOptions } from "../../src/engine/options.ts";
import { drain, makeCore, prompt, request, SMALL_MODEL } from "../engine/helpers.ts";

const OTHER_DRAFT = "test/fixtures/models/arch-mistral";
/** K+V × layers × kv heads × head dim × f32 × block size, for arch-llama3-rope and arch-mistral alike. */
const BLOCK_BYTES = 2 * 2 * 2 * 16 * 4 * 16;

const SPECS: [string, Partial<EngineOptions>][] = [
  ["self draft", { speculativeModel: SMALL_MODEL, speculativeDisableByBatchSize: 0 }],
  ["other draft", { speculativeModel: OTHER_DRAFT, numSpeculativeTokens: 3, speculativeDisableByBatchSize: 0 }],
  ["ngram", { speculativeMethod: "ngram", ngramPromptLookupMax: 3, speculativeDisableByBatchSize: 0 }],
];

function workload(): CoreRequest[] {
  // Prompts of 1..150 tokens, some sharing a 40-token prefix, some repeating a pattern (n-gram matches).
  return Array.from({ length: 12 }, (_, i) => {
    const len = 1 + ((i * 53) % 150);
    let p = prompt(len, i);
    if (i % 4 === 1) p = [...prompt(40, 7), ...p];
    if (i % 4 === 2) p = [...p, ...p.slice(0, 12), ...p.slice(0, 12)];
    return request(p, { maxTokens: 4 + ((i * 7) % 21), ignoreEos: true }, { id: `q${i}` });
  });
}

function run(core: EngineCore, reqs: CoreRequest[]): Map<string, number[]> {
  for (const r of reqs) core.addRequest({ ...r });
  const out = drain(core, () => core.scheduler.checkInvariants());
  assert.equal(core.stats().kvBlocksUsed, 0);
  return new Map(reqs.map((r) => [r.id, out.tokens.get(r.id)![0]]));
}

test("greedy outputs are identical with and without speculation (chunked prefill, prefix caching, preemption)", async () => {
  const reqs = workload();
  const expected = run(await makeCore({ maxModelLen: 400 }), reqs);
  for (const [name, spec] of SPECS) {
    const draftBlock = spec.speculativeModel ? BLOCK_BYTES : 0;
    for (const [setup, opts] of [
      ["chunked prefill", { maxNumBatchedTokens: 48, maxNumSeqs: 12 }],
      ["preemption", { kvCacheMemory: (BLOCK_BYTES + draftBlock) * 13, maxNumBatchedTokens: 512 }],
    ] as const) {
      const core = await makeCore({ maxModelLen: 400, ...opts, ...spec });
      const got = run(core, reqs);
      for (const r of reqs) assert.deepEqual(got.get(r.id), expected.get(r.id), `${name}, ${setup}: ${r.id}`);
      const st = core.stats();
      assert.ok(st.specSteps! > 0 && st.specProposedTokens! > 0, `${name}, ${setup}: speculated`);
      if (name === "self draft") {
        assert.equal(st.specAcceptedTokens, st.specProposedTokens, `${name}, ${setup}: a model agrees with itself`);
      }
      if (setup === "preemption") assert.ok(st.numPreemptions > 0, `${name}: preempted`);
      if (setup === "chunked prefill") assert.ok(st.prefixCacheHits > 0, `${name}: prefix hits`);
    }
  }
});

test("n > 1 with speculation: greedy siblings equal the n = 1 output; seeded sampling reproduces", async () => {
  const base = await makeCore();
  base.addRequest(request(prompt(30, 3), { maxTokens: 12, ignoreEos: true }, { id: "g" }));
  const greedy = drain(base).tokens.get("g")![0];
  for (const [name, spec] of SPECS) {
    const core = await makeCore(spec);
    core.addRequest(request(prompt(30, 3), { n: 3, maxTokens: 12, ignoreEos: true }, { id: "g" }));
    const sampled = { n: 3, temperature: 4, topP: 0.95, topK: 500, seed: 42, maxTokens: 16, ignoreEos: true };
    core.addRequest(request(prompt(25, 9), sampled, { id: "s" }));
    const out = drain(core, () => core.scheduler.checkInvariants());
    assert.deepEqual(out.tokens.get("g"), [greedy, greedy, greedy], name);
    const seqs = out.tokens.get("s")!;
    assert.ok(new Set(seqs.map((s) => s.join())).size > 1, `${name}: siblings differ`);
    const again = await makeCore(spec);
    again.addRequest(request(prompt(25, 9), sampled, { id: "s" }));
    assert.deepEqual(drain(again).tokens.get("s"), seqs, `${name}: same seed, same tokens`);
    assert.equal(core.stats().kvBlocksUsed, 0);
  }
});

test("logprobs with speculation equal those without", async () => {
  const p = { maxTokens: 10, ignoreEos: true, logprobs: 3 };
  const base = await makeCore();
  base.addRequest(request(prompt(20, 4), p, { id: "a" }));
  const want = drain(base).deltas.flatMap((d) => d.logprobs ?? []);
  for (const [name, spec] of SPECS) {
    const core = await makeCore(spec);
    core.addRequest(request(prompt(20, 4), p, { id: "a" }));
    const got = drain(core).deltas.flatMap((d) => d.logprobs ?? []);
    assert.equal(got.length, want.length, name);
    for (let i = 0; i < want.length; i++) {
      assert.equal(got[i].token, want[i].token);
      assert.ok(Math.abs(got[i].logprob - want[i].logprob) < 1e-5, `${name}: logprob ${i}`);
      assert.deepEqual(
        got[i].top.map((t) => t.token),
        want[i].top.map((t) => t.token),
      );
    }
  }
});

test("speculation turns off above --speculative-disable-by-batch-size running sequences", async () => {
  const reqs = (tag: string) =>
    Array.from({ length: 4 }, (_, i) =>
      request(prompt(10, 50 + i), { maxTokens: 8, ignoreEos: true }, { id: `${tag}${i}` }),
    );
  const off = await makeCore({ speculativeModel: SMALL_MODEL, speculativeDisableByBatchSize: 3 });
  for (const r of reqs("a")) off.addRequest(r);
  drain(off);
  assert.equal(off.stats().specSteps, 0, "4 running > 3: no speculation");
  const on = await makeCore({ speculativeModel: SMALL_MODEL, speculativeDisableByBatchSize: 4 });
  for (const r of reqs("b")) on.addRequest(r);
  drain(on);
  assert.ok(on.stats().specSteps! > 0);
});

test("tokens accepted from speculation are cached: a prompt extending the output reuses them", async () => {
  const spec = SPECS[0][1];
  const core = await makeCore(spec);
  const p = prompt(20, 11);
  core.addRequest(request(p, { maxTokens: 40, ignoreEos: true }, { id: "a" }));
  const out = drain(core).tokens.get("a")![0];
  assert.equal(core.stats().specAcceptedTokens, core.stats().specProposedTokens);
  const next = [...p, ...out.slice(0, 36), 5, 6, 7];
  const before = core.stats().prefixCacheHits;
  core.addRequest(request(next, { maxTokens: 5, ignoreEos: true }, { id: "b" }));
  const got = drain(core).tokens.get("b")![0];
  // 20 + 36 = 56 tokens were final: the first 3 blocks (48 tokens) are full and hit.
  assert.equal(core.stats().prefixCacheHits - before, 48);
  const cold = await makeCore();
  cold.addRequest(request(next, { maxTokens: 5, ignoreEos: true }, { id: "b" }));
  assert.deepEqual(got, drain(cold).tokens.get("b")![0]);
});

test("bad speculative flag combinations are refused with the flag's name", async () => {
  await assert.rejects(makeCore({ speculativeMethod: "draft" }), /--speculative-model/);
  await assert.rejects(makeCore({ speculativeMethod: "ngram", speculativeModel: SMALL_MODEL }), /ngram/);
  await assert.rejects(makeCore({ numSpeculativeTokens: 3 }), /--num-speculative-tokens/);
  await assert.rejects(
    makeCore({ speculativeMethod: "ngram", ngramPromptLookupMin: 5, ngramPromptLookupMax: 2 }),
    /lookup-max/,
  );
  await assert.rejects(makeCore({ speculativeModel: "test/fixtures/models/does-not-exist" }), /does-not-exist/);
});
