/**
 * The scheduler's invariants, checked by `Scheduler.checkInvariants` (tests and the randomized run call it
 * after every step): a diagnostic over the scheduler's queues and the KV manager, kept apart from the
 * scheduling logic itself.
 */
import type { KvCacheManager } from "../kv/kv-cache-manager.ts";
import type { Deque } from "./deque.ts";
import type { SchedulerConfig, StepPlan } from "./plan.ts";
import type { Request, Sequence } from "./sequence.ts";

/** What the check reads of a Scheduler. */
export interface SchedulerState {
  config: Readonly<SchedulerConfig>;
  kv: KvCacheManager;
  waiting: Deque<Sequence>;
  batchQueue: Deque<Sequence>;
  running: readonly Sequence[];
  batch: ReadonlySet<Sequence>;
  requests: ReadonlyMap<string, Request>;
  inFlight: StepPlan | null;
  pendingFrees: readonly Sequence[];
  /** maxNumSeqs slots a sequence takes. */
  slotsFor(seq: Sequence): number;
}

/** Throws on the first violated invariant (see Scheduler.checkInvariants). */
export function checkSchedulerInvariants(st: SchedulerState): void {
  const cfg = st.config;
  st.kv.checkInvariants();
  const running = new Set(st.running);
  if (running.size !== st.running.length) throw new Error("a sequence is listed twice in running");
  let slots = 0;
  for (const s of st.running) {
    if (s.status !== "running") throw new Error(`running seq ${s.seqId} has status ${s.status}`);
    if (st.requests.get(s.request.id) !== s.request) throw new Error(`running seq ${s.seqId}: unknown request`);
    if (s.blockIds.length === 0 || !st.kv.isLive(s)) throw new Error(`running seq ${s.seqId} holds no blocks`);
    if (s.numComputedTokens > s.tokenIds.length) throw new Error(`seq ${s.seqId}: more computed than tokens`);
    if (st.inFlight === null && s.numDraftComputedTokens > s.numComputedTokens) {
      throw new Error(
        `seq ${s.seqId}: draft KV for ${s.numDraftComputedTokens} tokens, ${s.numComputedTokens} computed`,
      );
    }
    if (s.tokenIds.length >= cfg.maxModelLen) throw new Error(`running seq ${s.seqId} reached maxModelLen`);
    const need = st.kv.blocksFor(s.numComputedTokens);
    if (s.blockIds.length < need) throw new Error(`seq ${s.seqId}: ${s.blockIds.length} blocks for ${need} needed`);
    if (st.inFlight === null && cfg.policy !== "naive" && s.blockIds.length !== need) {
      throw new Error(`seq ${s.seqId}: ${s.blockIds.length} blocks for ${s.numComputedTokens} computed tokens`);
    }
    slots += st.slotsFor(s);
  }
  if (slots > cfg.maxNumSeqs) throw new Error(`${slots} running slots > maxNumSeqs ${cfg.maxNumSeqs}`);
  const waiting = new Set<Sequence>();
  for (const q of [st.batchQueue, st.waiting]) {
    for (const s of q) {
      if (waiting.has(s)) throw new Error(`seq ${s.seqId} is queued twice`);
      if (running.has(s)) throw new Error(`seq ${s.seqId} is both waiting and running`);
      waiting.add(s);
      if (s.status !== "waiting") throw new Error(`waiting seq ${s.seqId} has status ${s.status}`);
      if (s.blockIds.length !== 0 || s.numComputedTokens !== 0 || s.numDraftComputedTokens !== 0 || st.kv.isLive(s)) {
        throw new Error(`waiting seq ${s.seqId} holds blocks or computed tokens`);
      }
      if (st.requests.get(s.request.id) !== s.request) throw new Error(`waiting seq ${s.seqId}: unknown request`);
    }
  }
  if (st.kv.numLiveSequences !== st.running.length + st.pendingFrees.length) {
    throw new Error(`${st.kv.numLiveSequences} sequences hold blocks; ${st.running.length} running`);
  }
  if (cfg.policy === "continuous") {
    if (st.batchQueue.length > 0 || st.batch.size > 0) throw new Error("batch state under continuous policy");
  } else {
    if (st.batch.size !== st.running.length + st.batchQueue.length) throw new Error("batch size mismatch");
    for (const s of st.batch) {
      if (!running.has(s) && st.batchQueue.indexOf(s) < 0) throw new Error(`batch member ${s.seqId} lost`);
    }
    for (const s of st.waiting) if (st.batch.has(s)) throw new Error(`batch member ${s.seqId} in waiting`);
    if (cfg.policy === "naive") {
      let req: Request | null = null;
      for (const s of st.batch) {
        if (req !== null && s.request !== req) throw new Error("naive policy: two requests in the batch");
        req = s.request;
      }
    }
  }
  for (const req of st.requests.values()) {
    if (req.isFinished) throw new Error(`finished request ${req.id} still tracked`);
    for (const s of req.sequences) {
      if (s.status !== "finished" && !running.has(s) && !waiting.has(s)) throw new Error(`seq ${s.seqId} is lost`);
    }
  }
}
