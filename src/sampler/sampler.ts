/**
 * Token sampling for one row of logits, following vLLM's pipeline:
 *
 *   raw logprobs (log-softmax of the unmodified logits, vLLM v1's default `raw_logprobs`)
 *   → min_tokens suppression → logit_bias → repetition penalty → frequency/presence penalties
 *   → temperature < 1e-5 ? greedy argmax
 *     : temperature → top-k → top-p → min-p → inverse-CDF draw with the sequence's own rng.
 *
 * Cost per call: the greedy path is one pass over the vocabulary; requested logprobs add a copy and the
 * log-softmax passes (and a heap pass for top logprobs). With top-k only the k best are exponentiated;
 * with only min-p only the tokens it may keep; top-p needs the whole softmax, then a quickselect over the
 * tokens that can still matter. No full sort, and nothing is allocated but the result object.
 */
import type { SamplingParams } from "../engine/types.ts";
import { MAX_LOGPROBS } from "./params.ts";
import { Penalizer } from "./penalties.ts";
import type { Rng } from "./rng.ts";
import { selectByMass, selectTopK, sortByRank } from "./select.ts";

/** Temperatures below this sample greedily (vLLM's _SAMPLING_EPS). */
export const GREEDY_TEMPERATURE = 1e-5;

/** Everything a draw may depend on: one sequence's parameters, history and rng (never other sequences). */
export interface SampleContext {
  params: SamplingParams;
  rng: Rng;
  /** For the repetition penalty (vLLM penalizes tokens seen in the prompt or the output). */
  promptTokenIds: readonly number[];
  /** For presence/frequency/repetition penalties and min_tokens. */
  outputTokenIds: readonly number[];
  /**
   * Suppressed (logit -inf), along with params.stopTokenIds, while outputTokenIds.length < minTokens.
   * Skipped when params.ignoreEos (EOS is then not a stop token, as in vLLM).
   */
  eosTokenIds: readonly number[];
}

/** One sampled token. */
export interface SampleResult {
  token: number;
  /** Raw logprob of `token` (log-softmax of the unmodified logits); NaN when params.logprobs is null. */
  logprob: number;
  /** The params.logprobs highest raw logprobs, best first (ties: lower id); [] for 0, null when not requested. */
  top: { token: number; logprob: number }[] | null;
}

/** Greedy argmax in one pass; ties go to the lowest id (a NaN never wins, unless it is at index 0). */
export function argmax(logits: Float32Array): number {
  return argmaxAt(logits, 0, logits.length);
}

/** argmax of x[offset, offset + n), as an index into that range (backends' argmaxRows follow it exactly). */
export function argmaxAt(x: Float32Array, offset: number, n: number): number {
  let best = 0;
  let bestValue = x[offset];
  for (let i = 1; i < n; i++) {
    const v = x[offset + i];
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/**
 * Whether sample() reduces to the argmax of the raw logits for these params once `numOutputTokens` tokens
 * exist: greedy, no logprobs, and no processor that would change a logit. The engine may then let the
 * backend take the argmax where the logits are (Backend.argmaxRows) instead of reading them back.
 */
export function isPlainGreedy(p: SamplingParams, numOutputTokens: number): boolean {
  if (p.temperature >= GREEDY_TEMPERATURE || p.logprobs !== null || numOutputTokens < p.minTokens) return false;
  if (p.repetitionPenalty !== 1 || p.presencePenalty !== 0 || p.frequencyPenalty !== 0) return false;
  for (const _ in p.logitBias) return false;
  return true;
}

/** log Σ exp(logits), computed stably in double precision. */
export function logSumExp(logits: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (!Number.isFinite(max)) return max;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/**
 * Samples tokens for rows of logits of one vocabulary size. Holds vocab-sized scratch arrays, so use one
 * instance per engine (or per thread), not per sequence; calls are independent of each other.
 */
export class Sampler {
  private readonly penalizer: Penalizer;
  /** Candidate token ids of the current call. */
  private readonly ids: Int32Array;
  /** exp((logit - max) / T) by token id; valid for the current candidates only. The top token weighs 1. */
  private readonly weights: Float64Array;
  /** Copy of the unmodified logits, kept only while logprobs are being returned. */
  private readonly raw: Float32Array;
  private readonly topIds = new Int32Array(MAX_LOGPROBS);

  constructor(readonly vocabSize: number) {
    if (!Number.isSafeInteger(vocabSize) || vocabSize < 1) throw new RangeError(`bad vocabSize ${vocabSize}`);
    this.penalizer = new Penalizer(vocabSize);
    this.ids = new Int32Array(vocabSize);
    this.weights = new Float64Array(vocabSize);
    this.raw = new Float32Array(vocabSize);
  }

  /** Samples one token from `logits` (length vocabSize; modified in place). */
  sample(logits: Float32Array, ctx: SampleContext): SampleResult {
    this.checkLength(logits);
    const p = ctx.params;
    const k = p.logprobs;
    let lse = Number.NaN;
    let top: SampleResult["top"] = null;
    if (k !== null) {
      this.raw.set(logits);
      lse = logSumExp(logits);
      top = this.topLogprobs(logits, k, lse);
    }
    this.penalizer.apply(logits, ctx);
    let token: number;
    if (p.temperature < GREEDY_TEMPERATURE) {
      token = argmax(logits);
    } else {
      const n = this.truncate(logits, p);
      token = n === 0 ? argmax(logits) : this.draw(n, ctx.rng.next());
    }
    return { token, logprob: k === null ? Number.NaN : this.raw[token] - lse, top };
  }

  /**
   * Writes into `out` (length vocabSize) the exact distribution `sample` draws from for these logits and
   * context, after every processor and truncation (one-hot when greedy). Modifies `logits` in place and
   * does not touch the rng. For tests, debugging and speculative decoding.
   */
  distribution(logits: Float32Array, ctx: Omit<SampleContext, "rng">, out: Float64Array): void {
    this.checkLength(logits);
    out.fill(0);
    this.penalizer.apply(logits, ctx);
    const n = ctx.params.temperature < GREEDY_TEMPERATURE ? 0 : this.truncate(logits, ctx.params);
    if (n === 0) {
      out[argmax(logits)] = 1;
      return;
    }
    let mass = 0;
    for (let i = 0; i < n; i++) mass += this.weights[this.ids[i]];
    for (let i = 0; i < n; i++) out[this.ids[i]] = this.weights[this.ids[i]] / mass;
  }

  private checkLength(logits: Float32Array): void {
    if (logits.length !== this.vocabSize) {
      throw new RangeError(`logits has length ${logits.length}, expected vocabSize ${this.vocabSize}`);
    }
  }

  /** The k best raw logprobs, best first. */
  private topLogprobs(logits: Float32Array, k: number, lse: number): { token: number; logprob: number }[] {
    const n = selectTopK(logits, this.vocabSize, k, this.topIds);
    sortByRank(this.topIds, 0, n, logits);
    const top = new Array<{ token: number; logprob: number }>(n);
    for (let i = 0; i < n; i++) {
      const id = this.topIds[i];
      top[i] = { token: id, logprob: logits[id] - lse };
    }
    return top;
  }

  /**
   * Applies temperature, top-k, top-p and min-p. Leaves the surviving ids in ids[0, n) with their weights
   * in `weights` and returns n; 0 means the logits are degenerate (no finite maximum) and the caller falls
   * back to argmax.
   */
  private truncate(logits: Float32Array, p: SamplingParams): number {
    const vocab = this.vocabSize;
    const ids = this.ids;
    const w = this.weights;
    const invT = 1 / p.temperature;
    const topK = p.topK > 0 && p.topK < vocab ? p.topK : 0;
    let n: number;
    let max = Number.NEGATIVE_INFINITY;
    let total = 0;
    if (topK > 0) {
      // Temperature preserves the order, so select on the logits and exponentiate only the k kept.
      n = selectTopK(logits, vocab, topK, ids);
      for (let i = 0; i < n; i++) if (logits[ids[i]] > max) max = logits[ids[i]];
      if (!Number.isFinite(max)) return 0;
      for (let i = 0; i < n; i++) {
        const id = ids[i];
        const x = Math.exp((logits[id] - max) * invT);
        w[id] = x;
        total += x;
      }
    } else if (p.topP >= 1) {
      for (let i = 0; i < vocab; i++) if (logits[i] > max) max = logits[i];
      if (!Number.isFinite(max)) return 0;
      // No top-p, so the total mass is not needed: exponentiate only what min-p may keep. The cutoff is a
      // hair looser than min-p's (in log space) so rounding cannot drop a token; the exact test is below.
      const cutoff = p.minP > 0 ? max + (Math.log(p.minP) - 1e-6) * p.temperature : Number.NEGATIVE_INFINITY;
      n = 0;
      for (let i = 0; i < vocab; i++) {
        const l = logits[i];
        if (!(l >= cutoff)) continue;
        const x = Math.exp((l - max) * invT);
        if (x > 0) {
          w[i] = x;
          ids[n++] = i;
        }
      }
    } else {
      for (let i = 0; i < vocab; i++) if (logits[i] > max) max = logits[i];
      if (!Number.isFinite(max)) return 0;
      for (let i = 0; i < vocab; i++) {
        const x = Math.exp((logits[i] - max) * invT);
        w[i] = x;
        total += x;
      }
      // Prefilter what cannot survive: below minP (min-p keeps weight ≥ minP since the top weighs 1), and at
      // or below (1 - topP) / vocab of the mass: all such tokens together weigh ≤ 1 - topP, so they sit
      // in the low tail top-p removes. What remains is a top-ranked prefix, so top-p on it is exact.
      const floor = ((1 - p.topP) * total) / vocab;
      const minW = p.minP;
      n = 0;
      for (let i = 0; i < vocab; i++) {
        const x = w[i];
        if (x > floor && x >= minW && x > 0) ids[n++] = i;
      }
    }
    if (p.topP < 1) n = selectByMass(ids, n, w, p.topP * total);
    if (p.minP > 0) {
      // Drop prob < minP × max prob, i.e. weight < minP.
      let m = 0;
      for (let i = 0; i < n; i++) if (w[ids[i]] >= p.minP) ids[m++] = ids[i];
      n = m;
    }
    return n;
  }

  /** Inverse-CDF draw over ids[0, n) in their (deterministic) order, with u uniform in [0, 1). */
  private draw(n: number, u: number): number {
    const ids = this.ids;
    const w = this.weights;
    let mass = 0;
    for (let i = 0; i < n; i++) mass += w[ids[i]];
    const target = u * mass;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc += w[ids[i]];
      if (target < acc) return ids[i];
    }
    // Rounding (or NaN logits): the last candidate that has any weight.
    for (let i = n - 1; i > 0; i--) if (w[ids[i]] > 0) return ids[i];
    return ids[0];
  }
}
