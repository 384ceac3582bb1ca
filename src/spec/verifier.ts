/**
 * Verification of a speculating sequence's draft tokens against the target's logits rows.
 *
 *   rows:    [ r0 | r1 | … | rk ]    r_j = target logits after [x, d1..dj] (row 0 follows x)
 *   drafts:  [ d1 | d2 | … | dk ]
 *   run:     [ d1 … da, t ]          a accepted draft tokens, then t: the target's own token at row a
 *
 * Greedy (temperature 0): d_j is accepted while it equals the target's argmax at row j - 1; t is the
 * argmax of the first row that disagrees (or of row k: the bonus token). Identical to decoding without
 * speculation. Sampling: rejection sampling (src/spec/rejection-sampler.ts) against the distribution the
 * non-speculative sampler would draw from at that position (Sampler.distribution, with the history
 * extended by the accepted draft tokens, so penalties and min_tokens see exactly what they would), so
 * every emitted token follows the target's distribution.
 */
import type { TokenLogprob } from "../engine/types.ts";
import { MAX_LOGPROBS } from "../sampler/params.ts";
import type { Rng } from "../sampler/rng.ts";
import { GREEDY_TEMPERATURE, logSumExp, Sampler } from "../sampler/sampler.ts";
import { selectTopK, sortByRank } from "../sampler/select.ts";
import type { Sequence } from "../scheduler/sequence.ts";
import { acceptDraft, argmaxOf, sampleFrom, sampleResidual } from "./rejection-sampler.ts";

export class SpecVerifier {
  readonly #sampler: Sampler;
  readonly #p: Float64Array;
  readonly #raw: Float32Array;
  readonly #topIds = new Int32Array(MAX_LOGPROBS);

  constructor(
    readonly vocabSize: number,
    readonly eosTokenIds: readonly number[],
  ) {
    this.#sampler = new Sampler(vocabSize);
    this.#p = new Float64Array(vocabSize);
    this.#raw = new Float32Array(vocabSize);
  }

  /**
   * Verifies `drafts` (k >= 1 tokens) with `rows` ([k + 1, vocab] logits, modified in place) and the
   * draft distributions `q` ([k, vocab], or null for point masses). Appends the run (accepted drafts then
   * one more token) to `run`, and when `logprobs` is given one TokenLogprob per run token (raw logprobs
   * of the unmodified rows, as the sampler reports them). Returns the number of accepted drafts.
   */
  verify(
    seq: Sequence,
    drafts: readonly number[],
    rows: Float32Array,
    q: Float64Array | null,
    run: number[],
    logprobs: TokenLogprob[] | null,
  ): number {
    const V = this.vocabSize;
    const k = drafts.length;
    const req = seq.request;
    const params = req.params;
    const greedy = params.temperature < GREEDY_TEMPERATURE;
    const rng = seq.rng as Rng;
    const ctx = {
      params,
      promptTokenIds: req.promptTokenIds,
      outputTokenIds: seq.outputTokenIds,
      eosTokenIds: this.eosTokenIds,
    };
    const p = this.#p;
    for (let j = 0; j <= k; j++) {
      const row = rows.subarray(j * V, (j + 1) * V);
      let lse = Number.NaN;
      let top: TokenLogprob["top"] = [];
      if (logprobs !== null && params.logprobs !== null) {
        this.#raw.set(row);
        lse = logSumExp(row);
        top = this.#top(row, params.logprobs, lse);
      }
      this.#sampler.distribution(row, ctx, p);
      let token: number;
      let accepted = false;
      if (j < k) {
        const d = drafts[j];
        const qj = q === null ? null : q.subarray(j * V, (j + 1) * V);
        if (greedy) {
          token = argmaxOf(p);
          accepted = token === d;
        } else {
          accepted = acceptDraft(p, qj, d, rng);
          token = accepted ? d : sampleResidual(p, qj, d, rng);
        }
      } else {
        token = greedy ? argmaxOf(p) : sampleFrom(p, rng);
      }
      run.push(token);
      if (logprobs !== null) logprobs.push({ token, logprob: this.#raw[token] - lse, top });
      if (!accepted) return j;
      ctx.outputTokenIds.push(token);
    }
    return k; // unreachable: row k never accepts
  }

  /** The k best raw logprobs of a row, best first (ties: lower id), like the sampler's. */
  #top(row: Float32Array, k: number, lse: number): { token: number; logprob: number }[] {
    const ids = this.#topIds;
    const n = selectTopK(row, row.length, Math.min(k, ids.length), ids);
    sortByRank(ids, 0, n, row);
    const out = new Array<{ token: number; logprob: number }>(n);
    for (let i = 0; i < n; i++) out[i] = { token: ids[i], logprob: row[ids[i]] - lse };
    return out;
  }
}
