/**
 * N-gram prompt lookup (Saxena 2023; vLLM's `ngram` method): no draft model. The last n tokens of the
 * sequence are looked up earlier in prompt + output, longest n first; the tokens that followed the most
 * recent earlier occurrence are proposed. It pays off when the output quotes its input (code editing,
 * summaries, "repeat after me") and costs nothing but a scan when it does not.
 *
 *   tokens:  [ a b c d x y a b c ]      n = 3: suffix "a b c" also occurs at 0
 *              ^^^^^ match                     → propose "d x y" (k = 3), the tokens after that match
 */
import type { StepPlan } from "../scheduler/scheduler.ts";
import type { Proposer } from "./proposer.ts";

/**
 * Up to k tokens to propose after `tokens`: for n from min(maxN, length - 1) down to minN, finds the
 * latest start i < length - n with tokens[i, i + n) equal to the last n tokens, and returns
 * tokens[i + n, min(i + n + k, length)). Returns [] when no n-gram of those lengths recurs (or k <= 0).
 * O(length · maxN) per n tried.
 */
export function ngramPropose(tokens: readonly number[], minN: number, maxN: number, k: number): number[] {
  const len = tokens.length;
  if (k <= 0) return [];
  for (let n = Math.min(maxN, len - 1); n >= minN; n--) {
    const suffix = len - n;
    for (let i = suffix - 1; i >= 0; i--) {
      let j = 0;
      while (j < n && tokens[i + j] === tokens[suffix + j]) j++;
      if (j < n) continue;
      const from = i + n;
      return tokens.slice(from, Math.min(from + k, len));
    }
  }
  return [];
}

export class NgramProposer implements Proposer {
  readonly name = "ngram";

  constructor(
    readonly minN: number,
    readonly maxN: number,
  ) {
    if (!Number.isInteger(minN) || minN < 1 || !Number.isInteger(maxN) || maxN < minN) {
      throw new RangeError(`ngram proposer: need 1 <= min (${minN}) <= max (${maxN})`);
    }
  }

  beginStep(_plan: StepPlan): void {}

  propose(plan: StepPlan): (Float64Array | null)[] {
    const probs = new Array<Float64Array | null>(plan.items.length).fill(null);
    for (const item of plan.items) {
      if (item.numSpecTokens > 0) {
        item.specTokenIds = ngramPropose(item.seq.tokenIds, this.minN, this.maxN, item.numSpecTokens);
      }
    }
    return probs;
  }

  accepted(): void {}
}
