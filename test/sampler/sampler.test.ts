import assert from "node:assert/strict";
import { test } from "node:test";
import type { SamplingParams } from "../../src/engine/types.ts";
import { Rng } from "../../src/sampler/rng.ts";
import { argmax, type SampleContext, Sampler } from "../../src/sampler/sampler.ts";
import { context, params, randomLogits, referenceDistribution } from "./helpers.ts";

function sampleOnce(logits: number[] | Float32Array, p: SamplingParams, extra: Partial<SampleContext> = {}) {
  const row = Float32Array.from(logits);
  return new Sampler(row.length).sample(row, context(p, extra));
}

test("greedy picks the argmax, lowest id on ties, and ignores the rng", () => {
  const p = params({ temperature: 0 });
  assert.equal(sampleOnce([0.1, 3, -2, 2.9], p).token, 1);
  assert.equal(sampleOnce([1, 5, 2, 5, 5], p).token, 1);
  assert.equal(sampleOnce([-Infinity, -1, -1], p).token, 1);
  // Below 1e-5 counts as greedy, and top-k/top-p do not matter.
  assert.equal(sampleOnce([0, 1, 7, 7], params({ temperature: 1e-6, topK: 1, topP: 0.1 })).token, 2);
  const rng = new Rng(5);
  const before = new Rng(5).next();
  sampleOnce([1, 2], p, { rng });
  assert.equal(rng.next(), before, "greedy does not consume randomness");
  assert.equal(argmax(Float32Array.of(2, 2, 2)), 0);
});

test("top_k 1 and min_p 1 sample the argmax (lowest id among equal maxima for top_k)", () => {
  const logits = [0.3, 2, 1, 2, -1];
  for (let seed = 0; seed < 50; seed++) {
    assert.equal(sampleOnce(logits, params({ topK: 1, seed })).token, 1);
    assert.ok([1, 3].includes(sampleOnce(logits, params({ minP: 1, seed })).token));
  }
});

function drawSequence(seed: number, steps: number, sampler = new Sampler(1000)): number[] {
  const p = params({ temperature: 0.9, topP: 0.95, seed });
  const ctx = context(p, { rng: new Rng(seed) });
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    out.push(sampler.sample(randomLogits(1000, 77 + i, 1.5), ctx).token);
  }
  return out;
}

test("same seed ⇒ same tokens; different seeds differ", () => {
  const a = drawSequence(42, 64);
  assert.deepEqual(drawSequence(42, 64), a);
  assert.notDeepEqual(drawSequence(43, 64), a);
});

test("a sequence's draws do not depend on other sequences sampled in between", () => {
  const alone = drawSequence(7, 32);
  // Interleave another sequence on the same Sampler (shared scratch) with different params.
  const sampler = new Sampler(1000);
  const pa = params({ temperature: 0.9, topP: 0.95, seed: 7 });
  const pb = params({ temperature: 1.3, topK: 50, minP: 0.01, repetitionPenalty: 1.3, seed: 8 });
  const ca = context(pa, { rng: new Rng(7) });
  const cb = context(pb, { rng: new Rng(8), outputTokenIds: [1, 2, 3] });
  const mixed: number[] = [];
  for (let i = 0; i < 32; i++) {
    sampler.sample(randomLogits(1000, 500 + i), cb);
    mixed.push(sampler.sample(randomLogits(1000, 77 + i, 1.5), ca).token);
    sampler.sample(randomLogits(1000, 900 + i), { ...cb, params: params({ temperature: 0, logprobs: 5 }) });
  }
  assert.deepEqual(mixed, alone);
});

test("distribution() matches the sort-based reference on a large random vocabulary", () => {
  const vocab = 5000;
  const sampler = new Sampler(vocab);
  const out = new Float64Array(vocab);
  const variants: Partial<SamplingParams>[] = [
    { temperature: 1 },
    { temperature: 0.6, topP: 0.5 },
    { temperature: 1, topP: 0.9 },
    { temperature: 2, topP: 0.99 },
    { temperature: 1, minP: 0.02 },
    { temperature: 1.2, topP: 0.9, minP: 0.3 },
    { temperature: 0.8, topK: 40 }, // heap selection
    { temperature: 0.8, topK: 1500, topP: 0.97 }, // quickselect selection
    { temperature: 1, topK: 200, topP: 0.7, minP: 0.05 },
    { temperature: 1, topK: vocab + 10 },
    { temperature: 1, topK: -1, topP: 0.3 },
  ];
  for (const [seed, scale] of [
    [1, 3],
    [2, 0.5],
    [3, 8],
  ]) {
    // Quantized logits add many exact ties, which must break by lower id.
    const smooth = randomLogits(vocab, seed, scale);
    const tied = smooth.map((x) => Math.round(x * 4) / 4);
    for (const logits of [smooth, tied]) {
      for (const v of variants) {
        const p = params(v);
        const expected = referenceDistribution(logits, p);
        sampler.distribution(logits.slice(), context(p), out);
        for (let t = 0; t < vocab; t++) {
          if ((expected[t] === 0) !== (out[t] === 0) || Math.abs(expected[t] - out[t]) > 1e-9) {
            assert.fail(`${JSON.stringify(v)} seed ${seed}: token ${t} expected ${expected[t]}, got ${out[t]}`);
          }
        }
      }
    }
  }
});

test("ties at a top-k boundary keep the lower ids", () => {
  const p = params({ topK: 2 });
  const out = new Float64Array(5);
  new Sampler(5).distribution(Float32Array.of(1, 3, 1, 1, 3.5), context(p), out);
  assert.deepEqual(
    [...out].map((x) => x > 0),
    [false, true, false, false, true],
  );
  new Sampler(5).distribution(Float32Array.of(2, 0, 2, 2, 2), context(params({ topK: 3 })), out);
  assert.deepEqual(
    [...out].map((x) => x > 0),
    [true, false, true, true, false],
  );
});

test("logit_bias, penalties and temperature feed the final distribution", () => {
  // Bias makes token 0 the argmax for greedy, and can ban a token outright (-100).
  assert.equal(sampleOnce([0, 1, 0.5], params({ temperature: 0, logitBias: { 0: 2 } })).token, 0);
  for (let seed = 0; seed < 30; seed++) {
    const r = sampleOnce([5, 5, -3], params({ logitBias: { 0: -100, 1: -100 }, seed }), { rng: new Rng(seed) });
    assert.equal(r.token, 2);
  }
  // Repetition penalty counts prompt tokens; presence/frequency only output tokens.
  const base = [2, 1.9, 0];
  assert.equal(sampleOnce(base, params({ temperature: 0, repetitionPenalty: 1.2 }), { promptTokenIds: [0] }).token, 1);
  const pf = params({ temperature: 0, presencePenalty: 0.2 });
  assert.equal(sampleOnce(base, pf, { promptTokenIds: [0] }).token, 0);
  assert.equal(sampleOnce(base, pf, { outputTokenIds: [0] }).token, 1);
  // The exact processed distribution: logits [1, 1, 0] with token 0 seen twice, frequency 0.5 → [0, 1, 0].
  const out = new Float64Array(3);
  const p = params({ frequencyPenalty: 0.5, temperature: 0.5 });
  new Sampler(3).distribution(Float32Array.of(1, 1, 0), context(p, { outputTokenIds: [0, 0] }), out);
  const z = 1 + 2 * Math.exp(-2); // weights exp((l - 1) / 0.5): token0 l=0, token1 l=1, token2 l=0
  assert.ok(Math.abs(out[1] - 1 / z) < 1e-12);
  assert.ok(Math.abs(out[0] - Math.exp(-2) / z) < 1e-12);
  assert.ok(Math.abs(out[2] - Math.exp(-2) / z) < 1e-12);
});

test("min_tokens suppresses EOS and stop token ids until reached", () => {
  const logits = [0, 1, 9, 8, 2]; // 2 = EOS, 3 = extra stop id
  const p = params({ temperature: 0, minTokens: 2, stopTokenIds: [3] });
  const at = (n: number, pp = p) =>
    sampleOnce(logits, pp, { eosTokenIds: [2], outputTokenIds: new Array(n).fill(0) }).token;
  assert.equal(at(0), 4);
  assert.equal(at(1), 4);
  assert.equal(at(2), 2);
  // With ignoreEos, EOS is an ordinary token (not a stop) and is not held back; stop ids still are.
  assert.equal(at(0, params({ temperature: 0, minTokens: 2, stopTokenIds: [3], ignoreEos: true })), 2);
  assert.equal(at(0, params({ temperature: 0, minTokens: 2, stopTokenIds: [2, 3], ignoreEos: true })), 4);
  // Random sampling never draws a suppressed token.
  for (let seed = 0; seed < 200; seed++) {
    const r = sampleOnce([3, 3, 3, 3], params({ minTokens: 1, stopTokenIds: [1], seed }), {
      eosTokenIds: [0, 2],
      rng: new Rng(seed),
    });
    assert.equal(r.token, 3);
  }
});

test("logprobs are the raw log-softmax: normalized, unaffected by processing, top sorted", () => {
  const logits = [0.5, -1, 2, 0, 1.2, -2.5, 1.5, -0.3, 2, -1.5];
  const p = params({ logprobs: 10, temperature: 0.3, logitBias: { 5: 30 }, repetitionPenalty: 2 });
  const r = sampleOnce(logits, p, { promptTokenIds: [2, 8] });
  assert.equal(r.token, 5, "bias decides the token");
  assert.ok(r.top !== null && r.top.length === 10);
  const total = r.top.reduce((s, t) => s + Math.exp(t.logprob), 0);
  assert.ok(Math.abs(total - 1) < 1e-6, `Σ exp(logprob) = ${total}`);
  // Raw: token 5 keeps its unbiased logprob, and the order ignores bias and penalties.
  assert.equal(r.logprob, r.top.find((t) => t.token === 5)?.logprob);
  assert.ok(r.logprob < -4);
  assert.deepEqual(
    r.top.map((t) => t.token),
    [2, 8, 6, 4, 0, 3, 7, 1, 9, 5],
  );
  for (let i = 1; i < r.top.length; i++) assert.ok(r.top[i - 1].logprob >= r.top[i].logprob);
  const lse = Math.log(logits.reduce((s, x) => s + Math.exp(x), 0));
  assert.ok(Math.abs(r.top[0].logprob - (2 - lse)) < 1e-6);
});

test("logprobs on a large vocabulary: top-k ids, 0 and null", () => {
  const vocab = 50_000;
  const logits = randomLogits(vocab, 11);
  logits[123] = 20;
  logits[77] = 20; // tie with 123: lower id first
  logits[40_000] = 19;
  const r = sampleOnce(logits, params({ logprobs: 5 }));
  const expectedOrder = Array.from({ length: vocab }, (_, i) => i)
    .sort((a, b) => logits[b] - logits[a] || a - b)
    .slice(0, 5);
  assert.deepEqual(
    r.top?.map((t) => t.token),
    expectedOrder,
  );
  assert.deepEqual(expectedOrder.slice(0, 3), [77, 123, 40_000]);
  let sum = 0;
  const lse = r.top![0].logprob; // logit 20 - lse
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[i] - 20 + lse);
  assert.ok(Math.abs(sum - 1) < 1e-6, `Σ exp = ${sum}`);

  const zero = sampleOnce(logits, params({ logprobs: 0 }));
  assert.deepEqual(zero.top, []);
  assert.ok(Number.isFinite(zero.logprob) && zero.logprob <= 0);
  const none = sampleOnce(logits, params({}));
  assert.equal(none.top, null);
});

test("rejects logits of the wrong length", () => {
  assert.throws(() => new Sampler(4).sample(new Float32Array(5), context(params())), RangeError);
});
