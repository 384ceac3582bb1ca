/**
 * Lossless speculative sampling at one position (Leviathan et al. 2023, "Fast Inference from
 * Transformers via Speculative Decoding"; Chen et al. 2023, "Accelerating Large Language Model Decoding
 * with Speculative Sampling").
 *
 * A draft token d was drawn from the draft's distribution q. With p the target's distribution:
 *
 *   accept d with probability min(1, p(d) / q(d))
 *   otherwise emit a token drawn from norm(max(0, p − q))
 *
 * and the emitted token is distributed exactly as p. A proposer without a distribution (n-gram lookup)
 * is a point mass q = δ_d: accept with probability p(d), else draw from p with d removed.
 *
 * p and q are probability vectors over the vocabulary (Float64Array, summing to 1, as
 * Sampler.distribution writes them). Randomness comes from the sequence's own Rng, so a seeded request
 * reproduces; nothing here allocates.
 */
import type { Rng } from "../sampler/rng.ts";

/**
 * True when draft token `d` is accepted: with probability min(1, p(d) / q(d)); `q` null = point mass at
 * d. Draws from `rng` only when the outcome is uncertain (0 < p(d) < q(d)).
 */
export function acceptDraft(p: Float64Array, q: Float64Array | null, d: number, rng: Rng): boolean {
  const pd = p[d];
  const qd = q === null ? 1 : q[d];
  if (pd >= qd) return true;
  if (!(pd > 0)) return false;
  return rng.next() * qd < pd;
}

/**
 * Draws the replacement for a rejected draft token `d` from norm(max(0, p − q)) (q null = point mass at
 * d: p with d removed). If that residual has no mass (only possible through rounding, since a rejection
 * needs p(d) < q(d)), draws from p.
 */
export function sampleResidual(p: Float64Array, q: Float64Array | null, d: number, rng: Rng): number {
  const V = p.length;
  let total = 0;
  for (let i = 0; i < V; i++) {
    const r = q === null ? (i === d ? 0 : p[i]) : p[i] - q[i];
    if (r > 0) total += r;
  }
  if (!(total > 1e-12)) return sampleFrom(p, rng);
  const target = rng.next() * total;
  let acc = 0;
  let last = -1;
  for (let i = 0; i < V; i++) {
    const r = q === null ? (i === d ? 0 : p[i]) : p[i] - q[i];
    if (r <= 0) continue;
    acc += r;
    last = i;
    if (target < acc) return i;
  }
  return last; // rounding: the last token with residual mass
}

/** Inverse-CDF draw from the distribution p (the last token with mass if rounding overshoots). */
export function sampleFrom(p: Float64Array, rng: Rng): number {
  let total = 0;
  for (let i = 0; i < p.length; i++) total += p[i];
  const target = rng.next() * total;
  let acc = 0;
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    const x = p[i];
    if (x <= 0) continue;
    acc += x;
    last = i;
    if (target < acc) return i;
  }
  return last;
}

/** The token a one-hot (or any) distribution puts the most mass on; ties go to the lowest id. */
export function argmaxOf(p: Float64Array): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return best;
}
