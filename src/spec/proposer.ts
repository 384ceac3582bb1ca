/**
 * What the engine needs of a draft-token proposer (src/spec/draft-proposer.ts, ngram-proposer.ts).
 *
 * Per step, after `Scheduler.schedule(k)` and before the target's forward pass:
 *
 *   proposer.beginStep(plan)            every step (a draft model mirrors the plan's KV block copies)
 *   probs = proposer.propose(plan)      fills item.specTokenIds for items with numSpecTokens > 0
 *   … target forward, verification …
 *   proposer.accepted(seq, a, s)        per verified item: a of its s draft tokens were accepted
 */
import type { StepPlan } from "../scheduler/scheduler.ts";
import type { Sequence } from "../scheduler/sequence.ts";

export interface Proposer {
  readonly name: string;
  /** Called once per non-empty step, before `propose` and before the target's forward pass. */
  beginStep(plan: StepPlan): void;
  /**
   * Sets item.specTokenIds (at most item.numSpecTokens tokens; possibly none) for every item with
   * numSpecTokens > 0. Returns, parallel to plan.items, the distributions the draft tokens were drawn
   * from ([specTokenIds.length, vocab] rows, valid until the next `propose`), or null for an item whose
   * draft tokens are point masses (n-gram lookup, greedy requests).
   * Every sequence of a speculating item must have its `rng` set (the engine does it).
   */
  propose(plan: StepPlan): (Float64Array | null)[];
  /** After verification of a still-running sequence: `numAccepted` of its `numProposed` draft tokens were accepted. */
  accepted(seq: Sequence, numAccepted: number, numProposed: number): void;
}
