import type { FinishReason } from "../engine/types.ts";
import { KvCacheManager, type PrefixCacheStats } from "../kv/kv-cache-manager.ts";
import { Deque } from "./deque.ts";
import { checkSchedulerInvariants } from "./invariants.ts";
import {
  NO_SPEC,
  RequestRejectedError,
  type ScheduledItem,
  type SchedulerConfig,
  type SchedulerPolicy,
  type StepPlan,
} from "./plan.ts";
import { type Request, Sequence } from "./sequence.ts";

export type { ScheduledItem, SchedulerConfig, SchedulerPolicy, StepPlan };
export { RequestRejectedError };

/** Negative when a is served before b: lower priority value, then earlier arrival, then sequence index. */
function compareSeqs(a: Sequence, b: Sequence): number {
  const ra = a.request;
  const rb = b.request;
  return (
    ra.priority - rb.priority ||
    ra.arrivalTime - rb.arrivalTime ||
    ra.arrivalOrder - rb.arrivalOrder ||
    a.index - b.index
  );
}

/**
 * The iteration-level scheduler (vLLM v1 style): no prefill/decode phases, every step each scheduled
 * sequence catches its numComputedTokens up towards its token count within one token budget.
 *
 * Engine loop:
 *
 *   plan = scheduler.schedule()
 *   if plan.items.length > 0:
 *     run plan.blockCopies, then the forward pass over plan.items
 *     for each item with sample and scheduler.numForksDue(item.seq) > 0: scheduler.fork(item.seq, that many)
 *     sample a token for every item with sample, and for every forked child (same logits row)
 *     finished = scheduler.update(plan, sampled)
 *   report plan.finished and finished; abort / finishSequence between steps
 *
 * Per step: (1) running sequences in admission order each get min(remaining, budget) tokens (decode = 1,
 * a chunked prefill gets its next chunk); when one cannot get blocks, the least important running
 * sequence (largest priority value, then latest arrival) is preempted — freed, reset to 0 computed
 * tokens, put at the front of the waiting queue — until it fits or is itself the victim. (2) If nobody
 * was preempted, waiting sequences are admitted in order (priority, then arrival) while the budget,
 * maxNumSeqs and the blocks allow; each looks up its cached prefix first, and its remaining prompt is
 * chunked to the budget. Admission stops at the first sequence that does not fit (no overtaking).
 *
 * Speculative decoding (`schedule(k)`): a running sequence in decode also gets up to k lookahead slots
 * for draft tokens (within the budget, maxModelLen and its max_tokens), but only when the blocks are free
 * without preempting anyone. `update` then takes the accepted draft tokens plus the token sampled after
 * them (`sampled` maps such a sequence to an array), counts only accepted tokens as computed, and gives
 * unused lookahead blocks back (see KvCacheManager.commitSpeculative).
 */
export class Scheduler {
  readonly config: Readonly<SchedulerConfig>;
  readonly kv: KvCacheManager;

  /** Not yet admitted, in service order. */
  private readonly waiting = new Deque<Sequence>();
  /** static / naive: members of the current batch waiting for admission (front = next). */
  private readonly batchQueue = new Deque<Sequence>();
  /** In admission order (forked children appended). */
  private readonly running: Sequence[] = [];
  /** static / naive: unfinished members of the current batch (running or in batchQueue). */
  private readonly batch = new Set<Sequence>();
  private readonly requests = new Map<string, Request>();
  /** The plan between schedule() and update(); null when none (an empty plan is never in flight). */
  private inFlight: StepPlan | null = null;
  /** Children forked from a sampling item of the in-flight plan: update() appends their tokens. */
  private readonly forkedInFlight: Sequence[] = [];
  /** Sequences finished while a plan was in flight: their blocks are freed by update(). */
  private readonly pendingFrees: Sequence[] = [];
  private preemptions = 0;
  private nextSeqId = 0;
  private nextArrival = 0;

  constructor(config: SchedulerConfig) {
    for (const key of ["maxNumSeqs", "maxNumBatchedTokens", "maxModelLen", "blockSize", "numBlocks"] as const) {
      const v = config[key];
      if (!Number.isInteger(v) || v <= 0)
        throw new RangeError(`scheduler: ${key} must be a positive integer, got ${v}`);
    }
    if (config.maxModelLen < 2) throw new RangeError("scheduler: maxModelLen must be >= 2");
    if (!["continuous", "static", "naive"].includes(config.policy)) {
      throw new RangeError(`scheduler: unknown policy ${config.policy}`);
    }
    this.config = Object.freeze({ ...config, eosTokenIds: [...config.eosTokenIds] });
    this.kv = new KvCacheManager({
      numBlocks: config.numBlocks,
      blockSize: config.blockSize,
      enablePrefixCaching: config.enablePrefixCaching && config.policy !== "naive",
    });
  }

  // ---------------------------------------------------------------- requests

  /**
   * Creates sequence 0 of `req` and queues it (in priority, then arrival order). Returns it.
   * Throws RequestRejectedError for a request that can never be served: an empty prompt, prompt + 1 >
   * maxModelLen, more KV blocks than the pool holds for prompt + 1 tokens, n outside 1..maxNumSeqs, a
   * duplicate id; under "naive" also a prompt over maxNumBatchedTokens (prompts are not chunked) or n
   * reservations of maxModelLen tokens exceeding the pool.
   */
  addRequest(req: Request): Sequence {
    const cfg = this.config;
    const len = req.promptTokenIds.length;
    const n = req.params.n;
    if (this.requests.has(req.id)) throw new RequestRejectedError(`request id ${req.id} is already in use`);
    if (req.sequences.length !== 0) throw new RequestRejectedError(`request ${req.id} was already added`);
    if (len === 0) throw new RequestRejectedError("the prompt is empty");
    if (len + 1 > cfg.maxModelLen) {
      throw new RequestRejectedError(
        `the prompt has ${len} tokens; with one generated token that is ${len + 1}, over maxModelLen ${cfg.maxModelLen}`,
      );
    }
    const blocks = this.kv.blocksFor(len + 1);
    if (blocks > cfg.numBlocks) {
      throw new RequestRejectedError(
        `the prompt (${len} tokens) plus one generated token needs ${blocks} KV blocks of ${cfg.blockSize} tokens; ` +
          `the pool holds ${cfg.numBlocks}`,
      );
    }
    if (!Number.isInteger(n) || n < 1 || n > cfg.maxNumSeqs) {
      throw new RequestRejectedError(`n = ${n} must be between 1 and maxNumSeqs = ${cfg.maxNumSeqs}`);
    }
    if (!Number.isFinite(req.priority) || !Number.isFinite(req.arrivalTime)) {
      throw new RequestRejectedError("priority and arrivalTime must be finite numbers");
    }
    if (cfg.policy === "naive") {
      if (len > cfg.maxNumBatchedTokens) {
        throw new RequestRejectedError(
          `the prompt has ${len} tokens, over maxNumBatchedTokens ${cfg.maxNumBatchedTokens} (naive policy: no chunking)`,
        );
      }
      const reserve = n * this.kv.blocksFor(cfg.maxModelLen);
      if (reserve > cfg.numBlocks) {
        throw new RequestRejectedError(
          `naive policy reserves ${reserve} KV blocks (n = ${n} × maxModelLen ${cfg.maxModelLen}); the pool holds ${cfg.numBlocks}`,
        );
      }
    }
    req.arrivalOrder = this.nextArrival++;
    const seq = new Sequence(this.nextSeqId++, req, 0, req.promptTokenIds.slice(), len);
    req.sequences.push(seq);
    this.requests.set(req.id, req);
    // Scan from the back: with FCFS arrivals this stops at once.
    let i = this.waiting.length;
    while (i > 0 && compareSeqs(this.waiting.at(i - 1)!, seq) > 0) i--;
    this.waiting.insertAt(i, seq);
    return seq;
  }

  /**
   * Aborts every unfinished sequence of the request wherever it is (waiting or running): frees its
   * blocks, marks it finished with reason "abort", and returns them. An unknown id is a no-op ([]).
   * Call it between steps; if a plan is in flight the blocks stay allocated until `update`.
   */
  abortRequest(requestId: string): Sequence[] {
    const req = this.requests.get(requestId);
    if (req === undefined) return [];
    const out: Sequence[] = [];
    for (const seq of req.sequences) {
      if (seq.status === "finished") continue;
      this.detach(seq);
      this.retire(seq, "abort");
      out.push(seq);
    }
    return out;
  }

  /** Finishes one sequence for the engine (e.g. a stop string matched in the client); no-op if finished. */
  finishSequence(seq: Sequence, reason: FinishReason): void {
    if (seq.status === "finished") return;
    this.detach(seq);
    this.retire(seq, reason);
  }

  getRequest(requestId: string): Request | undefined {
    return this.requests.get(requestId);
  }

  hasUnfinished(): boolean {
    return this.running.length + this.waiting.length + this.batchQueue.length > 0;
  }

  // ---------------------------------------------------------------- stats

  get numRunning(): number {
    return this.running.length;
  }

  get numWaiting(): number {
    return this.waiting.length + this.batchQueue.length;
  }

  get numPreemptions(): number {
    return this.preemptions;
  }

  /** Fraction of KV blocks in use, 0..1. */
  get kvUsage(): number {
    return this.kv.usage;
  }

  get numFreeBlocks(): number {
    return this.kv.numFreeBlocks;
  }

  get prefixCacheStats(): Readonly<PrefixCacheStats> {
    return this.kv.stats;
  }

  /** KV blocks in use and in total, and prefix-cache queries / hits in tokens (for EngineStats). */
  kvStats(): { used: number; total: number; queries: number; hits: number } {
    const total = this.kv.numBlocks;
    return { used: total - this.kv.numFreeBlocks, total, queries: this.kv.stats.queries, hits: this.kv.stats.hits };
  }

  /** Running sequences in scheduling order (do not mutate). */
  get runningSeqs(): readonly Sequence[] {
    return this.running;
  }

  /** Waiting sequences in the order they would be admitted (a fresh array). */
  waitingSeqs(): Sequence[] {
    return [...this.batchQueue, ...this.waiting];
  }

  // ---------------------------------------------------------------- the step

  /**
   * Plans one step (see the class comment). Mutates scheduler and KV state: blocks for every item are
   * allocated, cached prefixes adopted, victims preempted. Must be followed by `update(plan, sampled)`
   * before the next `schedule()` unless the plan is empty. `numSpecTokens` > 0 reserves up to that many
   * draft-token slots for each running sequence in decode (speculative decoding).
   */
  schedule(numSpecTokens = 0): StepPlan {
    if (this.inFlight !== null) throw new Error("schedule(): the previous plan was not passed to update()");
    const cfg = this.config;
    const items: ScheduledItem[] = [];
    const preempted: Sequence[] = [];
    const finished: Sequence[] = [];
    let budget = cfg.maxNumBatchedTokens;

    if (cfg.policy !== "continuous" && this.batch.size === 0) this.formBatch();

    // 1. Running sequences.
    let i = 0;
    while (i < this.running.length && budget > 0) {
      const seq = this.running[i];
      const numNew = Math.min(seq.tokenIds.length - seq.numComputedTokens, budget);
      if (numNew <= 0) {
        i++;
        continue;
      }
      // Only a decode step (its one new token is a sampled output) speculates; prompt chunks never do.
      const decoding = seq.tokenIds.length - seq.numComputedTokens === 1 && seq.numOutputTokens > 0;
      let numSpec = decoding ? this.specSlots(seq, numSpecTokens, budget - 1) : 0;
      // Speculation never preempts: without free blocks for the lookahead, this step is a plain decode.
      if (numSpec > 0 && !this.kv.allocateSlots(seq, numNew, null, numSpec)) numSpec = 0;
      let victim: Sequence | null = null;
      while (numSpec === 0 && !this.kv.allocateSlots(seq, numNew)) {
        victim = this.pickVictim();
        const vi = this.running.indexOf(victim);
        this.running.splice(vi, 1);
        if (vi < i) i--;
        // A victim already scheduled this step gives its tokens back.
        const k = items.findIndex((it) => it.seq === victim);
        if (k >= 0) {
          budget += items[k].numNewTokens + items[k].numSpecTokens;
          items.splice(k, 1);
        }
        this.preempt(victim, preempted, finished);
        if (victim === seq) break;
      }
      if (victim === seq) continue; // running[i] is now the next sequence
      items.push({
        seq,
        numNewTokens: numNew,
        sample: seq.numComputedTokens + numNew === seq.tokenIds.length,
        numSpecTokens: numSpec,
        specTokenIds: NO_SPEC,
      });
      budget -= numNew + numSpec;
      i++;
    }

    // 2. Waiting sequences — not in a step that had to preempt (vLLM v1: admitting would just thrash).
    if (preempted.length === 0) {
      const queue = cfg.policy === "continuous" ? this.waiting : this.batchQueue;
      let slots = 0;
      for (const s of this.running) slots += this.slotsFor(s);
      while (queue.length > 0 && budget > 0) {
        const seq = queue.peekFront()!;
        const need = this.slotsFor(seq);
        if (slots + need > cfg.maxNumSeqs) break;
        const cached = this.kv.enablePrefixCaching ? this.kv.findCachedPrefix(seq) : null;
        const start = cached === null ? 0 : cached.numTokens;
        const remaining = seq.tokenIds.length - start;
        const numNew = Math.min(remaining, budget);
        let lookahead = 0;
        if (cfg.policy === "naive") {
          // Whole prompt in one step (it fits the budget: addRequest checked), KV for maxModelLen reserved.
          if (numNew < remaining && remaining <= cfg.maxNumBatchedTokens) break;
          lookahead = Math.max(0, cfg.maxModelLen - start - numNew);
        }
        if (!this.kv.allocateSlots(seq, numNew, cached, lookahead)) break;
        queue.popFront();
        seq.status = "running";
        this.running.push(seq);
        slots += need;
        if (seq.index === 0 && seq.numPreemptions === 0) seq.request.numCachedTokens = seq.numComputedTokens;
        items.push({
          seq,
          numNewTokens: numNew,
          sample: seq.numComputedTokens + numNew === seq.tokenIds.length,
          numSpecTokens: 0,
          specTokenIds: NO_SPEC,
        });
        budget -= numNew;
      }
    }

    let numTokens = 0;
    for (const it of items) numTokens += it.numNewTokens + it.numSpecTokens;
    const plan: StepPlan = { items, numTokens, blockCopies: this.kv.takePendingCopies(), preempted, finished };
    this.inFlight = items.length > 0 ? plan : null;
    return plan;
  }

  /**
   * For a request with n > 1: how many children to fork from `seq` now (n - 1 when seq is sequence 0,
   * running, not yet forked; else 0). Ask it for each sampling item after the forward pass.
   */
  numForksDue(seq: Sequence): number {
    const req = seq.request;
    return seq.index === 0 && seq.status === "running" && req.params.n > 1 && req.sequences.length === 1
      ? req.params.n - 1
      : 0;
  }

  /**
   * Creates `count` children of `seq` (index = next free index of the request), sharing its blocks
   * (copy-on-write), with a copy of its tokenIds, appended to running and to request.sequences.
   *
   * Meant for the step where sequence 0 of an n > 1 request first samples: call it after the forward
   * pass and before `update`, and put a sampled token for each child in update's map (children sample
   * from the parent's logits row). Their numComputedTokens is what the parent's will be after update.
   * Called outside a step, children simply copy the parent's current state. Returns [] when seq is not
   * running (e.g. aborted meanwhile) or count <= 0.
   */
  fork(seq: Sequence, count: number): Sequence[] {
    if (seq.status !== "running" || count <= 0) return [];
    const cfg = this.config;
    const req = seq.request;
    const item = this.inFlight?.items.find((it) => it.seq === seq);
    const numComputed = seq.numComputedTokens + (item === undefined ? 0 : item.numNewTokens);
    const children: Sequence[] = [];
    for (let k = 0; k < count; k++) {
      const child = new Sequence(
        this.nextSeqId++,
        req,
        req.sequences.length,
        seq.tokenIds.slice(),
        seq.numPromptTokens,
      );
      child.numComputedTokens = numComputed;
      child.numDraftComputedTokens = Math.min(seq.numDraftComputedTokens, numComputed);
      child.status = "running";
      this.kv.fork(seq, child, numComputed);
      if (cfg.policy === "naive") {
        // Its own maxModelLen reservation (admission checked that n of them fit).
        this.kv.allocateSlots(child, 0, null, Math.max(0, cfg.maxModelLen - numComputed));
      }
      req.sequences.push(child);
      this.running.push(child);
      if (cfg.policy !== "continuous") this.batch.add(child);
      if (item?.sample) this.forkedInFlight.push(child);
      children.push(child);
    }
    return children;
  }

  /**
   * Applies the forward pass's results: each item's numNewTokens become computed; items with `sample`
   * (and children forked during the step) append their token from `sampled`, then are checked for the
   * end: EOS (unless ignoreEos) or a stopTokenId, once numOutputTokens >= minTokens → "stop";
   * numOutputTokens >= maxTokens or tokenIds.length >= maxModelLen → "length". Finished sequences free
   * their blocks, leave running, and are returned. Items of sequences finished meanwhile are skipped.
   *
   * A speculating item may map to an array instead: [a accepted draft tokens (a prefix of specTokenIds),
   * then the token sampled after them]. Those a tokens count as computed too; the tokens are appended in
   * order and the end checks run after each one, so a stop inside the run drops the rest.
   * Throws (before changing anything) if a sampling sequence has no token in `sampled`, or an array does
   * not start with a prefix of the item's specTokenIds.
   */
  update(plan: StepPlan, sampled: ReadonlyMap<Sequence, number | readonly number[]>): Sequence[] {
    if (plan.items.length === 0) return [];
    if (plan !== this.inFlight) throw new Error("update(): not the plan returned by the last schedule()");
    for (const it of plan.items) {
      if (!it.sample || it.seq.status !== "running") continue;
      const v = sampled.get(it.seq);
      if (v === undefined) {
        throw new Error(`update(): no sampled token for sequence ${it.seq.seqId} of request ${it.seq.request.id}`);
      }
      if (typeof v !== "number") checkSpecRun(it, v);
    }
    for (const child of this.forkedInFlight) {
      const v = sampled.get(child);
      if (child.status === "running" && (v === undefined || (typeof v !== "number" && v.length !== 1))) {
        throw new Error(`update(): no sampled token for forked sequence ${child.seqId} of request ${child.request.id}`);
      }
    }
    this.inFlight = null;
    const done: Sequence[] = [];
    for (const it of plan.items) {
      const seq = it.seq;
      if (seq.status !== "running") continue;
      seq.numComputedTokens += it.numNewTokens;
      if (!it.sample) continue;
      const v = sampled.get(seq)!;
      if (typeof v === "number" && it.numSpecTokens === 0) this.appendToken(seq, v, done);
      else this.appendSpecRun(seq, typeof v === "number" ? [v] : v, done);
    }
    for (const child of this.forkedInFlight) {
      const v = sampled.get(child)!;
      if (child.status === "running") this.appendToken(child, typeof v === "number" ? v : v[0], done);
    }
    this.forkedInFlight.length = 0;
    for (const seq of this.pendingFrees) this.kv.free(seq);
    this.pendingFrees.length = 0;
    if (done.length > 0) {
      let w = 0;
      for (const s of this.running) if (s.status === "running") this.running[w++] = s;
      this.running.length = w;
    }
    return done;
  }

  // ---------------------------------------------------------------- invariants

  /**
   * Throws on the first violated invariant: the KV manager's; no sequence both waiting and running or
   * listed twice; running sequences hold blocks covering their computed tokens (exactly, between steps,
   * except under "naive" which reserves ahead), and draft-model KV for no more than those (between
   * steps); waiting ones hold none and have nothing computed (draft KV included); the
   * KV manager's live sequences are exactly the running ones (plus frees deferred to update); slots <=
   * maxNumSeqs; batch bookkeeping for static / naive; every unfinished sequence of a known request is
   * queued somewhere, and known requests are unfinished.
   */
  checkInvariants(): void {
    checkSchedulerInvariants({
      config: this.config,
      kv: this.kv,
      waiting: this.waiting,
      batchQueue: this.batchQueue,
      running: this.running,
      batch: this.batch,
      requests: this.requests,
      inFlight: this.inFlight,
      pendingFrees: this.pendingFrees,
      slotsFor: (seq) => this.slotsFor(seq),
    });
  }

  // ---------------------------------------------------------------- internals

  /**
   * Draft-token slots for a decode step of `seq`: at most k, the budget left after its token, and no
   * more than can still become output (max_tokens, maxModelLen: the step emits up to numSpec + 1 tokens).
   */
  private specSlots(seq: Sequence, k: number, budget: number): number {
    if (k <= 0) return 0;
    const byLen = this.config.maxModelLen - seq.tokenIds.length - 1;
    const byMax = seq.request.params.maxTokens - seq.numOutputTokens - 1;
    return Math.max(0, Math.min(k, budget, byLen, byMax));
  }

  /** maxNumSeqs slots a sequence takes: a not-yet-forked sequence 0 of an n > 1 request books all n. */
  private slotsFor(seq: Sequence): number {
    const req = seq.request;
    return seq.index === 0 && req.params.n > 1 && req.sequences.length === 1 ? req.params.n : 1;
  }

  /** static / naive: move the next batch from waiting into batchQueue. */
  private formBatch(): void {
    const cfg = this.config;
    let slots = 0;
    while (this.waiting.length > 0) {
      const seq = this.waiting.peekFront()!;
      const need = this.slotsFor(seq);
      if (cfg.policy === "naive" ? this.batch.size > 0 : slots + need > cfg.maxNumSeqs) break;
      this.waiting.popFront();
      this.batchQueue.pushBack(seq);
      this.batch.add(seq);
      slots += need;
    }
  }

  /** The running sequence served last: largest priority value, then latest arrival, then highest index. */
  private pickVictim(): Sequence {
    let v = this.running[0];
    for (let k = 1; k < this.running.length; k++) if (compareSeqs(this.running[k], v) > 0) v = this.running[k];
    return v;
  }

  /** Preempts a sequence already removed from running: recompute later, or finish if it can never fit. */
  private preempt(seq: Sequence, preempted: Sequence[], finished: Sequence[]): void {
    this.kv.free(seq); // before resetting numComputedTokens: free() uses it to drop uncomputed hashes
    seq.numComputedTokens = 0;
    seq.numDraftComputedTokens = 0;
    if (this.kv.blocksFor(seq.tokenIds.length) > this.config.numBlocks) {
      // Even alone in the pool it could not hold the KV for its next step.
      this.retire(seq, "length");
      finished.push(seq);
      return;
    }
    seq.status = "waiting";
    seq.numPreemptions++;
    this.preemptions++;
    if (this.config.policy !== "continuous") {
      this.batchQueue.pushFront(seq);
    } else {
      // Front of its priority class (the very front when priorities are all equal).
      let i = 0;
      while (i < this.waiting.length && this.waiting.at(i)!.request.priority < seq.request.priority) i++;
      this.waiting.insertAt(i, seq);
    }
    preempted.push(seq);
  }

  /** Removes an unfinished sequence from whichever queue holds it. */
  private detach(seq: Sequence): void {
    if (seq.status === "running") {
      const i = this.running.indexOf(seq);
      if (i >= 0) this.running.splice(i, 1);
    } else if (seq.status === "waiting") {
      if (!this.waiting.remove(seq)) this.batchQueue.remove(seq);
    }
  }

  /** Marks a detached sequence finished and releases its blocks (after update() if a plan is in flight). */
  private retire(seq: Sequence, reason: FinishReason): void {
    if (this.inFlight !== null && seq.blockIds.length > 0) this.pendingFrees.push(seq);
    else this.kv.free(seq);
    seq.status = "finished";
    seq.finishReason = reason;
    this.batch.delete(seq);
    const req = seq.request;
    if (req.isFinished && this.requests.get(req.id) === req) this.requests.delete(req.id);
  }

  private appendToken(seq: Sequence, token: number, done: Sequence[]): void {
    seq.tokenIds.push(token);
    const reason = this.endReason(seq, token);
    if (reason !== null) {
      this.retire(seq, reason);
      done.push(seq);
    }
  }

  /**
   * Appends a verified speculative run (accepted draft tokens, then the token sampled after them), each
   * accepted one counting as computed, stopping at the first token that ends the sequence. Then hashes
   * blocks now full of accepted tokens and gives back unused lookahead blocks.
   */
  private appendSpecRun(seq: Sequence, run: readonly number[], done: Sequence[]): void {
    const registered = seq.numComputedTokens;
    let reason: FinishReason | null = null;
    for (let i = 0; i < run.length && reason === null; i++) {
      seq.tokenIds.push(run[i]);
      if (i < run.length - 1) seq.numComputedTokens++;
      reason = this.endReason(seq, run[i]);
    }
    this.kv.commitSpeculative(seq, registered, this.config.policy !== "naive");
    if (reason !== null) {
      this.retire(seq, reason);
      done.push(seq);
    }
  }

  /** Why `seq` ends after appending `token` (see `update`), or null. Records the stop token. */
  private endReason(seq: Sequence, token: number): FinishReason | null {
    const p = seq.request.params;
    if (
      seq.numOutputTokens >= p.minTokens &&
      ((!p.ignoreEos && this.config.eosTokenIds.includes(token)) || p.stopTokenIds.includes(token))
    ) {
      seq.stopTokenId = token;
      return "stop";
    }
    if (seq.numOutputTokens >= p.maxTokens || seq.tokenIds.length >= this.config.maxModelLen) return "length";
    return null;
  }
}

/** Throws unless `run` is [a prefix of item.specTokenIds, then one more token]. */
function checkSpecRun(item: ScheduledItem, run: readonly number[]): void {
  const spec = item.specTokenIds;
  const seq = item.seq;
  if (run.length < 1 || run.length > spec.length + 1) {
    throw new Error(
      `update(): ${run.length} tokens for sequence ${seq.seqId}, which verified ${spec.length} draft tokens`,
    );
  }
  for (let j = 0; j < run.length - 1; j++) {
    if (run[j] !== spec[j]) throw new Error(`update(): token ${j} of sequence ${seq.seqId} is not its draft token`);
  }
}
