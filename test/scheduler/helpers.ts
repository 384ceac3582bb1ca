/**
 * Test helpers: tiny schedulers and requests, a one-step engine loop emulation, and a shadow KV store
 * that checks every sequence attends to exactly its own prefix's KV (catches any block sharing,
 * copy-on-write or preemption bug that would corrupt a sequence).
 */
import type { SamplingParams } from "../../src/engine/types.ts";
import { type ScheduledItem, Scheduler, type SchedulerConfig, type StepPlan } from "../../src/scheduler/scheduler.ts";
import { Request, type Sequence } from "../../src/scheduler/sequence.ts";

export const EOS = 2;

export function params(over: Partial<SamplingParams> = {}): SamplingParams {
  return {
    n: 1,
    temperature: 0,
    topP: 1,
    topK: 0,
    minP: 0,
    repetitionPenalty: 1,
    presencePenalty: 0,
    frequencyPenalty: 0,
    logitBias: {},
    seed: null,
    maxTokens: 16,
    minTokens: 0,
    stop: [],
    stopTokenIds: [],
    ignoreEos: false,
    logprobs: null,
    includeStopStrInOutput: false,
    skipSpecialTokens: true,
    ...over,
  };
}

export function createScheduler(over: Partial<SchedulerConfig> = {}): Scheduler {
  return new Scheduler({
    maxNumSeqs: 4,
    maxNumBatchedTokens: 16,
    maxModelLen: 40,
    blockSize: 4,
    numBlocks: 10,
    enablePrefixCaching: true,
    policy: "continuous",
    eosTokenIds: [EOS],
    ...over,
  });
}

/** tokens(10, 5) = [10, 11, 12, 13, 14]: distinct, never EOS. */
export function tokens(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + i);
}

let clock = 0;

export interface RequestOpts extends Partial<SamplingParams> {
  priority?: number;
  cacheSalt?: string | null;
  arrivalTime?: number;
}

/** A request with a strictly later arrival time than the previous one (FCFS is deterministic). */
export function createRequest(id: string, prompt: number[] | number, opts: RequestOpts = {}): Request {
  const { priority, cacheSalt, arrivalTime, ...sp } = opts;
  const ids = typeof prompt === "number" ? tokens(1000, prompt) : prompt;
  return new Request(id, ids, params(sp), { priority, cacheSalt, arrivalTime: arrivalTime ?? ++clock });
}

/** Adds a request and returns its sequence 0. */
export function add(s: Scheduler, id: string, prompt: number[] | number, opts: RequestOpts = {}): Sequence {
  return s.addRequest(createRequest(id, prompt, opts));
}

/**
 * Shadow of the backend's paged KV memory. Each slot stores a fingerprint of the *prefix* that produced
 * it (KV at position p depends on tokens 0..p), so reading a block computed for another prefix, a stale
 * block, or an unwritten one is caught.
 */
export class ShadowKv {
  readonly slots: Float64Array;
  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    this.slots = new Float64Array(numBlocks * blockSize).fill(-1);
  }

  /**
   * Runs the plan like a backend: copies (all read before any write), all KV writes, then all reads. A
   * speculating item also writes (and reads) its draft tokens after its new ones: the fingerprints are
   * those of tokenIds + specTokenIds.
   */
  apply(plan: StepPlan): void {
    const bs = this.blockSize;
    const { src, dst } = plan.blockCopies;
    const saved = src.map((b) => this.slots.slice(b * bs, (b + 1) * bs));
    for (let k = 0; k < dst.length; k++) this.slots.set(saved[k], dst[k] * bs);
    const written = new Set<number>();
    const slot = (seq: Sequence, p: number) => seq.blockIds[Math.floor(p / bs)] * bs + (p % bs);
    const extended = (it: ScheduledItem) => {
      const ids = it.specTokenIds.length ? [...it.seq.tokenIds, ...it.specTokenIds] : it.seq.tokenIds;
      const end = it.seq.numComputedTokens + it.numNewTokens + it.specTokenIds.length;
      return { end, fp: fingerprints(ids, end) };
    };
    for (const it of plan.items) {
      const { end, fp } = extended(it);
      for (let p = it.seq.numComputedTokens; p < end; p++) {
        const sl = slot(it.seq, p);
        if (written.has(sl)) throw new Error(`slot ${sl} written twice in one step`);
        written.add(sl);
        this.slots[sl] = fp[p];
      }
    }
    for (const it of plan.items) {
      const { seq } = it;
      const { end, fp } = extended(it);
      for (let p = 0; p < end; p++) {
        if (this.slots[slot(seq, p)] !== fp[p]) {
          throw new Error(
            `seq ${seq.seqId} (${seq.request.id}) reads wrong KV at position ${p} (block ${seq.blockIds[Math.floor(p / bs)]})`,
          );
        }
      }
    }
  }
}

function fingerprints(tokenIds: readonly number[], n: number): number[] {
  const out = new Array<number>(n);
  let a = 0x12345678;
  let b = 0x9abcdef0;
  for (let p = 0; p < n; p++) {
    a = Math.imul(a ^ tokenIds[p], 0x9e3779b1) ^ (a >>> 15);
    b = Math.imul(b + tokenIds[p] + p, 0x85ebca77) ^ (b >>> 13);
    out[p] = (a >>> 0) * 2 ** 21 + ((b >>> 0) & 0x1fffff);
  }
  return out;
}

export interface StepResult {
  plan: StepPlan;
  finished: Sequence[];
  sampled: Map<Sequence, number>;
}

/**
 * One engine iteration: schedule, (shadow) forward pass, fork n > 1 requests at their first sample,
 * sample with `sampler` (default: 100 + numOutputTokens, never EOS), update. Checks invariants twice.
 */
export function step(s: Scheduler, sampler: (seq: Sequence) => number = defaultSampler, shadow?: ShadowKv): StepResult {
  const plan = s.schedule();
  s.checkInvariants();
  const sampled = new Map<Sequence, number>();
  if (plan.items.length === 0) return { plan, finished: [], sampled };
  shadow?.apply(plan);
  for (const it of plan.items) {
    if (!it.sample) continue;
    const due = s.numForksDue(it.seq);
    const children = due > 0 ? s.fork(it.seq, due) : [];
    s.checkInvariants();
    sampled.set(it.seq, sampler(it.seq));
    for (const c of children) sampled.set(c, sampler(c));
  }
  const finished = s.update(plan, sampled);
  s.checkInvariants();
  return { plan, finished, sampled };
}

export function defaultSampler(seq: Sequence): number {
  return 100 + seq.numOutputTokens;
}

/** Steps until nothing is left (or `limit` steps); returns every finished sequence in order. */
export function runToCompletion(s: Scheduler, limit = 1000, sampler = defaultSampler, shadow?: ShadowKv): Sequence[] {
  const out: Sequence[] = [];
  for (let i = 0; i < limit && s.hasUnfinished(); i++) {
    const r = step(s, sampler, shadow);
    out.push(...r.plan.finished, ...r.finished);
  }
  if (s.hasUnfinished()) throw new Error(`still unfinished after ${limit} steps`);
  return out;
}

/** [seqId-ish label, numNewTokens, sample] per item, for compact assertions. */
export function summary(plan: StepPlan): [string, number, boolean][] {
  return plan.items.map((it) => [`${it.seq.request.id}.${it.seq.index}`, it.numNewTokens, it.sample]);
}
