/**
 * Draft-model proposer: a small model of the same vocabulary guesses k tokens, one forward pass each.
 *
 * KV cache: the draft has its own paged KV pool with the target's block size and block count, indexed
 * by the SAME block tables (as vLLM does): the draft KV of sequence s lives in s's block ids of the draft
 * pool. So allocation, prefix sharing, copy-on-write (`beginStep` mirrors the plan's block copies) and
 * preemption need no bookkeeping of their own. seq.numDraftComputedTokens says how many leading tokens
 * have draft KV; it only ever covers tokens that are final (prompt and accepted output).
 *
 * A step for a speculating sequence whose last token x sits at position L - 1 (L = tokenIds.length):
 *
 *   positions:        D ... L-2 | L-1 | L   | L+1 | ... | L+k-2      D = numDraftComputedTokens
 *   pass 1 (catch up): t_D … t_{L-2}  x   → d1                         (chunked to maxTokens)
 *   pass 2:                               d1  → d2
 *   …
 *   pass k:                                             d_{k-1} → d_k   (d_k itself is never fed)
 *
 * The target then verifies [x, d1..dk] at positions L-1 .. L-1+k (the scheduler reserved those slots).
 * With a accepted, the draft KV of x, d1..d_min(a, k-1) holds final tokens: `accepted` advances
 * numDraftComputedTokens to L + min(a, k - 1); the rest is overwritten later.
 *
 * Catch-up is lazy: a sequence that never speculated (prefill, auto-off steps, a fresh admission that
 * adopted cached prefix blocks) has numDraftComputedTokens 0 and its first speculating step runs the
 * draft over everything. Rewriting the draft KV of shared prefix blocks stores the same values (same
 * tokens, same positions), so sharers are not disturbed.
 *
 * Sampling: each draft token is drawn from Sampler.distribution of the draft logits under the request's
 * own parameters and history (prompt, output, earlier draft tokens), with the sequence's rng; greedy
 * requests take the argmax and need no distribution kept.
 */
import { StepBuffers, type StepLimits } from "../engine/step-buffers.ts";
import type { LlamaGraph } from "../models/graph.ts";
import type { Rng } from "../sampler/rng.ts";
import { GREEDY_TEMPERATURE, Sampler } from "../sampler/sampler.ts";
import type { StepPlan } from "../scheduler/scheduler.ts";
import type { Sequence } from "../scheduler/sequence.ts";
import type { Proposer } from "./proposer.ts";
import { argmaxOf, sampleFrom } from "./rejection-sampler.ts";

/** maxTokens: most tokens in one draft forward pass (the draft graph's maxTokens). */
export type DraftLimits = StepLimits;

/** One speculating sequence during `propose`. */
interface Drafting {
  seq: Sequence;
  item: number;
  k: number;
  /** Output tokens + draft tokens so far (the history the draft's sampling parameters see). */
  history: number[];
  tokens: number[];
  /** Offset of its rows in #probs, or -1 (greedy). */
  probsAt: number;
  greedy: boolean;
}

export class DraftProposer implements Proposer {
  readonly name: string;
  readonly #sampler: Sampler;
  readonly #vocab: number;
  readonly #step: StepBuffers;
  readonly #logitRows: Int32Array;
  /** Which Drafting each logits row of a pass belongs to. */
  readonly #rowOwner: Int32Array;
  readonly #scratch: Float64Array;
  #probs = new Float64Array(0);

  constructor(
    readonly graph: LlamaGraph,
    readonly limits: DraftLimits,
    readonly eosTokenIds: readonly number[],
    name = "draft",
  ) {
    this.name = name;
    const { maxSeqs } = limits;
    this.#vocab = graph.cfg.vocabSize;
    this.#sampler = new Sampler(this.#vocab);
    this.#step = new StepBuffers(limits);
    this.#logitRows = new Int32Array(maxSeqs);
    this.#rowOwner = new Int32Array(maxSeqs);
    this.#scratch = new Float64Array(this.#vocab);
  }

  /** Mirrors the plan's copy-on-write block copies in the draft's KV pool (before anything writes). */
  beginStep(plan: StepPlan): void {
    const { src, dst } = plan.blockCopies;
    if (src.length > 0) this.graph.copyBlocks(Int32Array.from(src), Int32Array.from(dst));
  }

  propose(plan: StepPlan): (Float64Array | null)[] {
    const items = plan.items;
    const probs = new Array<Float64Array | null>(items.length).fill(null);
    const list: Drafting[] = [];
    let probRows = 0;
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (it.numSpecTokens <= 0) continue;
      const greedy = it.seq.request.params.temperature < GREEDY_TEMPERATURE;
      list.push({
        seq: it.seq,
        item: i,
        k: it.numSpecTokens,
        history: it.seq.outputTokenIds,
        tokens: [],
        probsAt: greedy ? -1 : probRows * this.#vocab,
        greedy,
      });
      if (!greedy) probRows += it.numSpecTokens;
    }
    if (list.length === 0) return probs;
    if (this.#probs.length < probRows * this.#vocab) this.#probs = new Float64Array(probRows * this.#vocab);

    this.#catchUp(list);
    let maxK = 0;
    for (const d of list) maxK = Math.max(maxK, d.k);
    for (let j = 1; j < maxK; j++) this.#extend(list, j);

    for (const d of list) {
      items[d.item].specTokenIds = d.tokens;
      if (!d.greedy) probs[d.item] = this.#probs.subarray(d.probsAt, d.probsAt + d.k * this.#vocab);
    }
    return probs;
  }

  accepted(seq: Sequence, numAccepted: number, numProposed: number): void {
    if (numProposed <= 0) return;
    seq.numDraftComputedTokens += Math.min(numAccepted, numProposed - 1);
  }

  /**
   * Pass 1: runs the draft over every token it has not seen, up to and including the last one, and
   * draws the first draft token. A long catch-up is split over several passes of at most maxTokens.
   */
  #catchUp(list: Drafting[]): void {
    const { maxTokens, maxSeqs } = this.limits;
    let next = 0;
    let from = list[0].seq.numDraftComputedTokens;
    while (next < list.length) {
      let t = 0;
      let ns = 0;
      let nl = 0;
      while (next < list.length && t < maxTokens && ns < maxSeqs) {
        const seq = list[next].seq;
        const to = seq.tokenIds.length;
        const take = Math.min(to - from, maxTokens - t);
        this.#step.sequence(ns++, t, from + take, seq.blockIds);
        for (let p = from; p < from + take; p++, t++) this.#step.token(t, seq.tokenIds[p], p, seq.blockIds);
        if (from + take === to) {
          seq.numDraftComputedTokens = to;
          this.#logitRows[nl] = t - 1;
          this.#rowOwner[nl++] = next++;
          if (next < list.length) from = list[next].seq.numDraftComputedTokens;
        } else {
          from += take;
        }
      }
      const logits = this.#forward(t, ns, nl);
      for (let r = 0; r < nl; r++) this.#draw(list[this.#rowOwner[r]], logits, r, 0);
    }
  }

  /** Pass j + 1: feeds draft token j (0-based: the one drawn last) of every sequence still drafting. */
  #extend(list: Drafting[], j: number): void {
    let ns = 0;
    for (let s = 0; s < list.length; s++) {
      const d = list[s];
      if (d.k <= j) continue;
      const pos = d.seq.tokenIds.length - 1 + j;
      this.#step.sequence(ns, ns, pos + 1, d.seq.blockIds);
      this.#step.token(ns, d.tokens[j - 1], pos, d.seq.blockIds);
      this.#logitRows[ns] = ns;
      this.#rowOwner[ns++] = s;
    }
    const logits = this.#forward(ns, ns, ns);
    for (let r = 0; r < ns; r++) this.#draw(list[this.#rowOwner[r]], logits, r, j);
  }

  #forward(numTokens: number, numSeqs: number, numRows: number): Float32Array {
    return this.graph.forward(this.#step.meta(numTokens, numSeqs), this.#logitRows.subarray(0, numRows));
  }

  /** Draws draft token j of `d` from logits row r (keeps its distribution unless greedy). */
  #draw(d: Drafting, logits: Float32Array, r: number, j: number): void {
    const V = this.#vocab;
    const req = d.seq.request;
    const out = d.greedy ? this.#scratch : this.#probs.subarray(d.probsAt + j * V, d.probsAt + (j + 1) * V);
    this.#sampler.distribution(
      logits.subarray(r * V, (r + 1) * V),
      {
        params: req.params,
        promptTokenIds: req.promptTokenIds,
        outputTokenIds: d.history,
        eosTokenIds: this.eosTokenIds,
      },
      out,
    );
    const token = d.greedy ? argmaxOf(out) : sampleFrom(out, d.seq.rng as Rng);
    d.tokens.push(token);
    d.history.push(token);
  }
}
