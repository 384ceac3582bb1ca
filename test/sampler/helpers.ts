/**
 * Test helpers for the sampler: chi-square critical values, a straightforward (sort-based) reference of the
 * truncation pipeline, and context builders.
 */
import type { SamplingParams } from "../../src/engine/types.ts";
import { normalizeSamplingParams } from "../../src/sampler/params.ts";
import { Rng } from "../../src/sampler/rng.ts";
import type { SampleContext } from "../../src/sampler/sampler.ts";

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9). */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61503916999186,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized upper incomplete gamma Q(a, x) (series / continued fraction, Numerical Recipes). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(-x + a * Math.log(x) - lnGamma(a));
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * front;
  }
  // Modified Lentz for the continued fraction of Q.
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return front * h;
}

/** Upper tail P(X > x) of the chi-square distribution with `df` degrees of freedom. */
export function chiSquareSurvival(x: number, df: number): number {
  return gammaQ(df / 2, x / 2);
}

/** The x with P(X > x) = alpha for a chi-square with `df` degrees of freedom (bisection). */
export function chiSquareCritical(df: number, alpha: number): number {
  let lo = 0;
  let hi = Math.max(10, df * 10);
  while (chiSquareSurvival(hi, df) > alpha) hi *= 2;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (chiSquareSurvival(mid, df) > alpha) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Pearson's statistic over the categories with a positive expected probability. */
export function chiSquareStatistic(counts: number[], probs: number[], draws: number): { stat: number; df: number } {
  let stat = 0;
  let categories = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] <= 0) continue;
    const e = probs[i] * draws;
    stat += (counts[i] - e) ** 2 / e;
    categories++;
  }
  return { stat, df: categories - 1 };
}

/**
 * The distribution the sampler should draw from, computed the obvious way: full sort (score desc, id asc),
 * softmax at temperature, top-k, renormalize, top-p prefix, min-p against the max probability.
 * Covers the truncation stage only (no penalties).
 */
export function referenceDistribution(logits: ArrayLike<number>, p: SamplingParams): number[] {
  const v = logits.length;
  const order = Array.from({ length: v }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  const out = new Array<number>(v).fill(0);
  if (p.temperature < 1e-5) {
    out[order[0]] = 1;
    return out;
  }
  let kept = order;
  if (p.topK > 0 && p.topK < v) kept = kept.slice(0, p.topK);
  const max = logits[kept[0]];
  const weights = kept.map((id) => Math.exp((logits[id] - max) / p.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let probs = weights.map((x) => x / total);
  if (p.topP < 1) {
    let cum = 0;
    let j = 0;
    while (j < kept.length) {
      cum += probs[j++];
      if (cum >= p.topP) break;
    }
    kept = kept.slice(0, j);
    probs = probs.slice(0, j);
  }
  if (p.minP > 0) {
    const threshold = p.minP * probs[0];
    const keep = probs.map((x) => x >= threshold);
    kept = kept.filter((_, i) => keep[i]);
    probs = probs.filter((_, i) => keep[i]);
  }
  const mass = probs.reduce((a, b) => a + b, 0);
  kept.forEach((id, i) => {
    out[id] = probs[i] / mass;
  });
  return out;
}

/** Validated params with test-friendly limits. */
export function params(overrides: Partial<SamplingParams> = {}, vocabSize = 1 << 20): SamplingParams {
  return normalizeSamplingParams(overrides, { vocabSize, defaultMaxTokens: 16 });
}

/** A sampling context with empty history. */
export function context(p: SamplingParams, extra: Partial<SampleContext> = {}): SampleContext {
  return {
    params: p,
    rng: new Rng(p.seed ?? 0),
    promptTokenIds: [],
    outputTokenIds: [],
    eosTokenIds: [],
    ...extra,
  };
}

/** Roughly normal deviates (sum of uniforms) from a seeded Rng, for random logits. */
export function randomLogits(size: number, seed: number, scale = 3): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    let s = 0;
    for (let j = 0; j < 6; j++) s += rng.next();
    out[i] = (s - 3) * scale;
  }
  return out;
}
