// Statistical checks: empirical histograms of 20,000 seeded draws against the exact distribution.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { SamplingParams } from "../../src/engine/types.ts";
import { Rng } from "../../src/sampler/rng.ts";
import { Sampler } from "../../src/sampler/sampler.ts";
import {
  chiSquareCritical,
  chiSquareStatistic,
  chiSquareSurvival,
  context,
  params,
  referenceDistribution,
} from "./helpers.ts";

// Deliberately not sorted by id, so rank order and id order differ.
const LOGITS = [0.5, -1.0, 2.0, 0.0, 1.2, -2.5, 1.5, -0.3, 0.8, -1.5];
const DRAWS = 20_000;
const ALPHA = 0.001;

test("chi-square critical values match published tables", () => {
  // p = 0.001 column of the chi-square table.
  const table: [number, number][] = [
    [1, 10.828],
    [3, 16.266],
    [5, 20.515],
    [9, 27.877],
    [20, 45.315],
  ];
  for (const [df, x] of table) assert.ok(Math.abs(chiSquareCritical(df, ALPHA) - x) < 1e-3, `df ${df}`);
  assert.ok(Math.abs(chiSquareSurvival(3.841, 1) - 0.05) < 1e-4);
});

function histogram(p: SamplingParams, seed: number): number[] {
  const sampler = new Sampler(LOGITS.length);
  const ctx = context(p, { rng: new Rng(seed) });
  const logits = new Float32Array(LOGITS.length);
  const counts = new Array<number>(LOGITS.length).fill(0);
  for (let i = 0; i < DRAWS; i++) {
    logits.set(LOGITS); // the sampler may modify its input
    counts[sampler.sample(logits, ctx).token]++;
  }
  return counts;
}

const cases: { name: string; p: Partial<SamplingParams>; support: number }[] = [
  { name: "temperature 1", p: { temperature: 1 }, support: 10 },
  { name: "temperature 0.7", p: { temperature: 0.7 }, support: 10 },
  { name: "top_k 4", p: { topK: 4 }, support: 4 },
  { name: "top_p 0.8", p: { topP: 0.8 }, support: 4 },
  { name: "min_p 0.15", p: { minP: 0.15 }, support: 5 },
  {
    name: "T 0.8 + top_k 7 + top_p 0.9 + min_p 0.05",
    p: { temperature: 0.8, topK: 7, topP: 0.9, minP: 0.05 },
    support: 5,
  },
  { name: "T 1.5 + top_p 0.95", p: { temperature: 1.5, topP: 0.95 }, support: 8 },
];

for (const [i, c] of cases.entries()) {
  test(`sampling distribution: ${c.name}`, () => {
    const p = params(c.p);
    const expected = referenceDistribution(LOGITS.map(Math.fround), p);
    assert.equal(expected.filter((x) => x > 0).length, c.support, "the case truncates as intended");

    // The exact distribution the sampler uses agrees with the reference.
    const exact = new Float64Array(LOGITS.length);
    new Sampler(LOGITS.length).distribution(Float32Array.from(LOGITS), context(p), exact);
    for (let t = 0; t < LOGITS.length; t++) assert.ok(Math.abs(exact[t] - expected[t]) < 1e-12, `token ${t}`);

    const counts = histogram(p, 1234 + i);
    for (let t = 0; t < LOGITS.length; t++) {
      if (expected[t] === 0) assert.equal(counts[t], 0, `excluded token ${t} was drawn`);
      else assert.ok(expected[t] * DRAWS >= 5, "expected counts large enough for chi-square");
    }
    const { stat, df } = chiSquareStatistic(counts, expected, DRAWS);
    const critical = chiSquareCritical(df, ALPHA);
    assert.ok(stat < critical, `chi2 ${stat.toFixed(2)} ≥ ${critical.toFixed(2)} (df ${df}); counts ${counts}`);
  });
}

test("a biased sampler fails the chi-square test (the test has power)", () => {
  // Draws at T = 0.9 judged against the T = 1 distribution must be rejected.
  const counts = histogram(params({ temperature: 0.9 }), 99);
  const expected = referenceDistribution(LOGITS.map(Math.fround), params({ temperature: 1 }));
  const { stat, df } = chiSquareStatistic(counts, expected, DRAWS);
  assert.ok(stat > chiSquareCritical(df, ALPHA), `chi2 ${stat}`);
});
