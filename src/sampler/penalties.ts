/**
 * Logit processors that run before temperature / truncation, in vLLM's order:
 * min_tokens suppression → logit_bias → repetition penalty → frequency and presence penalties.
 *
 * Each touches only the ids it concerns (O(history + bias entries), never O(vocab)); the vocab-sized
 * scratch arrays are owned by `Penalizer` and reused across calls.
 */
import type { SamplingParams } from "../engine/types.ts";

/** Sets the logits of `ids` to -Infinity. */
export function suppressTokens(logits: Float32Array, ids: readonly number[]): void {
  for (const id of ids) if (id >= 0 && id < logits.length) logits[id] = Number.NEGATIVE_INFINITY;
}

/** Adds `bias[id]` to each biased token's logit. */
export function applyLogitBias(logits: Float32Array, bias: Readonly<Record<number, number>>): void {
  for (const key in bias) {
    const id = Number(key);
    if (id >= 0 && id < logits.length) logits[id] += bias[id];
  }
}

/**
 * Marks a set of token ids in a vocab-sized array without clearing it between uses: a slot is marked when it
 * holds the current epoch.
 */
export class TokenMarks {
  private readonly stamps: Uint32Array;
  private epoch = 0;

  constructor(size: number) {
    this.stamps = new Uint32Array(size);
  }

  /** Empties the set in O(1). */
  clear(): void {
    if (++this.epoch === 0xffffffff) {
      this.stamps.fill(0);
      this.epoch = 1;
    }
  }

  /** Adds `id`; returns true if it was not in the set yet. */
  add(id: number): boolean {
    if (this.stamps[id] === this.epoch) return false;
    this.stamps[id] = this.epoch;
    return true;
  }
}

function inVocab(id: number, size: number): boolean {
  return id >= 0 && id < size && Number.isInteger(id);
}

/**
 * HF/vLLM repetition penalty: each distinct token seen in the prompt or the output has its logit divided by
 * `penalty` when positive and multiplied by it otherwise (so penalty > 1 always makes it less likely).
 */
export function applyRepetitionPenalty(
  logits: Float32Array,
  penalty: number,
  promptTokenIds: readonly number[],
  outputTokenIds: readonly number[],
  marks: TokenMarks,
): void {
  if (penalty === 1) return;
  marks.clear();
  penalizeOnce(logits, penalty, promptTokenIds, marks);
  penalizeOnce(logits, penalty, outputTokenIds, marks);
}

function penalizeOnce(logits: Float32Array, penalty: number, ids: readonly number[], marks: TokenMarks): void {
  const size = logits.length;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!inVocab(id, size) || !marks.add(id)) continue;
    const l = logits[id];
    logits[id] = l > 0 ? l / penalty : l * penalty;
  }
}

/**
 * OpenAI frequency/presence penalties over output tokens only:
 * logit -= frequency * count + presence * (count > 0).
 * `counts` is a zeroed vocab-sized scratch array and is left zeroed.
 */
export function applyFrequencyPresencePenalty(
  logits: Float32Array,
  frequency: number,
  presence: number,
  outputTokenIds: readonly number[],
  counts: Uint32Array,
): void {
  if (frequency === 0 && presence === 0) return;
  const size = logits.length;
  for (let i = 0; i < outputTokenIds.length; i++) {
    const id = outputTokenIds[i];
    if (inVocab(id, size)) counts[id]++;
  }
  // Second pass: apply once per distinct token and reset its count (a zero count means "done").
  for (let i = 0; i < outputTokenIds.length; i++) {
    const id = outputTokenIds[i];
    if (!inVocab(id, size)) continue;
    const c = counts[id];
    if (c === 0) continue;
    logits[id] -= frequency * c + presence;
    counts[id] = 0;
  }
}

/** Token history and ids the processors need (a subset of the sampler's `SampleContext`). */
export interface PenaltyContext {
  params: SamplingParams;
  promptTokenIds: readonly number[];
  outputTokenIds: readonly number[];
  eosTokenIds: readonly number[];
}

/** Applies every pre-sampling logit processor for one sequence, owning the scratch they need. */
export class Penalizer {
  private readonly marks: TokenMarks;
  private readonly counts: Uint32Array;

  constructor(readonly vocabSize: number) {
    this.marks = new TokenMarks(vocabSize);
    this.counts = new Uint32Array(vocabSize);
  }

  /** Modifies `logits` in place. */
  apply(logits: Float32Array, ctx: PenaltyContext): void {
    const p = ctx.params;
    if (ctx.outputTokenIds.length < p.minTokens) {
      // Like vLLM, EOS only counts as a stop token (and so is only held back) unless ignoreEos.
      if (!p.ignoreEos) suppressTokens(logits, ctx.eosTokenIds);
      suppressTokens(logits, p.stopTokenIds);
    }
    applyLogitBias(logits, p.logitBias);
    applyRepetitionPenalty(logits, p.repetitionPenalty, ctx.promptTokenIds, ctx.outputTokenIds, this.marks);
    applyFrequencyPresencePenalty(logits, p.frequencyPenalty, p.presencePenalty, ctx.outputTokenIds, this.counts);
  }
}
