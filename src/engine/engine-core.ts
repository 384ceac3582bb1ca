/**
 * The engine core: one synchronous step loop over scheduler → model runner → sampler → scheduler.
 * It knows token ids only (text is the client's business) and runs on the engine thread
 * (core-worker.ts); tests drive it directly.
 */
import type { LoadedModel } from "../models/model.ts";
import { Rng } from "../sampler/rng.ts";
import { type SampleResult, Sampler } from "../sampler/sampler.ts";
import { Scheduler, type SchedulerConfig } from "../scheduler/scheduler.ts";
import { Request, type Sequence } from "../scheduler/sequence.ts";
import type { SpeculativeDecoder } from "../spec/spec-decoder.ts";
import { ModelRunner } from "./model-runner.ts";
import type { EngineStats, FinishReason, SamplingParams, SeqDelta, TokenLogprob } from "./types.ts";

export interface CoreRequest {
  id: string;
  promptTokenIds: number[];
  params: SamplingParams;
  priority?: number;
  cacheSalt?: string | null;
  arrivalTime?: number;
}

export type CoreConfig = Omit<SchedulerConfig, "eosTokenIds">;

/** A speculating sequence's verified run during one step. */
interface SpecRun {
  run: number[];
  logprobs: TokenLogprob[] | null;
  accepted: number;
  proposed: number;
  /** seq.tokenIds.length before update appended the run. */
  before: number;
}

/** Mixes a request seed and a sequence index into one 32-bit seed (n > 1 siblings must differ). */
function seqSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

export class EngineCore {
  readonly scheduler: Scheduler;
  readonly runner: ModelRunner;
  readonly #sampler: Sampler;
  readonly #eos: number[];
  readonly #requests = new Map<string, Request>();
  readonly #forkRow: Float32Array;
  readonly #spec: SpeculativeDecoder | null;
  #promptTokens = 0;
  #generationTokens = 0;
  #steps = 0;
  #computedTokens = 0;
  readonly #finished: Record<string, number> = {};

  /** `spec`: speculative decoding (a draft model or n-gram proposer); null = off. */
  constructor(
    readonly model: LoadedModel,
    readonly config: CoreConfig,
    spec: SpeculativeDecoder | null = null,
  ) {
    this.#spec = spec;
    this.#eos = model.config.eosTokenIds;
    this.scheduler = new Scheduler({ ...config, eosTokenIds: this.#eos });
    this.runner = new ModelRunner(model.graph, {
      maxTokens: config.maxNumBatchedTokens,
      maxSeqs: config.maxNumSeqs,
      maxModelLen: config.maxModelLen,
      blockSize: config.blockSize,
    });
    this.#sampler = new Sampler(model.config.vocabSize);
    this.#forkRow = new Float32Array(model.config.vocabSize);
  }

  /** Queues a request; throws RequestRejectedError when it can never fit. */
  addRequest(r: CoreRequest): void {
    if (this.#requests.has(r.id)) throw new Error(`duplicate request id ${r.id}`);
    const req = new Request(r.id, r.promptTokenIds, r.params, {
      priority: r.priority ?? 0,
      arrivalTime: r.arrivalTime ?? performance.now(),
      cacheSalt: r.cacheSalt ?? null,
    });
    this.scheduler.addRequest(req);
    this.#requests.set(r.id, req);
    this.#promptTokens += r.promptTokenIds.length;
  }

  /** Aborts every sequence of a request; returns their final deltas. */
  abort(requestId: string): SeqDelta[] {
    const req = this.#requests.get(requestId);
    if (!req) return [];
    const seqs = this.scheduler.abortRequest(requestId);
    this.#requests.delete(requestId);
    return seqs.map((s) => this.#endDelta(s, "abort"));
  }

  /** Finishes one sequence early (the client saw a stop string). */
  finishSequence(requestId: string, index: number, reason: FinishReason): void {
    const req = this.#requests.get(requestId);
    const seq = req?.sequences.find((s) => s.index === index);
    if (!req || !seq || seq.status === "finished") return;
    this.scheduler.finishSequence(seq, reason);
    this.#count(reason);
    this.#forgetIfDone(req);
  }

  /** Ids of requests not yet finished. */
  requestIds(): string[] {
    return [...this.#requests.keys()];
  }

  hasWork(): boolean {
    return this.scheduler.hasUnfinished();
  }

  /** Runs one iteration; returns the deltas of every sequence that produced a token or finished. */
  step(): SeqDelta[] {
    const spec = this.#spec;
    const plan = this.scheduler.schedule(spec === null ? 0 : spec.numSpecTokens(this.scheduler.numRunning));
    // Sequences that can never fit the pool end with "length" (only when the pool is smaller than max_model_len).
    const capacityFinished = plan.finished.map((seq) => this.#endDelta(seq, "length"));
    if (plan.items.length === 0) return capacityFinished;
    this.#steps++;
    let draftProbs: (Float64Array | null)[] | null = null;
    if (spec !== null) {
      for (const it of plan.items) if (it.numSpecTokens > 0) this.#rngOf(it.seq);
      draftProbs = spec.propose(plan);
    }
    for (const it of plan.items) this.#computedTokens += it.numNewTokens + it.specTokenIds.length;
    const { logits, tokens, samplers, rowStart } = this.runner.execute(plan);
    const V = this.model.config.vocabSize;
    const sampled = new Map<Sequence, number | number[]>();
    const results = new Map<Sequence, SampleResult>();
    const runs = new Map<Sequence, SpecRun>();
    let i = -1;
    for (let itemIdx = 0; itemIdx < plan.items.length; itemIdx++) {
      const item = plan.items[itemIdx];
      if (!item.sample) continue;
      const seq = samplers[++i];
      if (spec !== null && item.specTokenIds.length > 0) {
        const run: number[] = [];
        const logprobs: TokenLogprob[] | null = seq.request.params.logprobs === null ? null : [];
        const rows = logits.subarray(rowStart[i] * V, rowStart[i + 1] * V);
        const accepted = spec.verify(seq, item, rows, draftProbs![itemIdx], run, logprobs);
        runs.set(seq, { run, logprobs, accepted, proposed: item.specTokenIds.length, before: seq.tokenIds.length });
        sampled.set(seq, run);
        continue;
      }
      if (tokens !== null) {
        // plainly greedy, taken on the backend (model-runner.ts): what #sampleInto's argmax would give
        sampled.set(seq, tokens[i]);
        results.set(seq, { token: tokens[i], logprob: Number.NaN, top: null });
        continue;
      }
      const row = logits.subarray(rowStart[i] * V, (rowStart[i] + 1) * V);
      const forks = this.scheduler.numForksDue(seq);
      if (forks > 0) {
        // First token of an n > 1 request: fork the prefilled prompt into n sequences that share its blocks.
        const children = this.scheduler.fork(seq, forks);
        for (const child of children) {
          this.#forkRow.set(row);
          this.#sampleInto(child, this.#forkRow, sampled, results);
        }
      }
      this.#sampleInto(seq, row, sampled, results);
    }
    const finished = this.scheduler.update(plan, sampled);
    const deltas: SeqDelta[] = capacityFinished;
    for (const [seq, value] of sampled) {
      const req = seq.request;
      let tokenIds: number[];
      let logprobs: TokenLogprob[] | null;
      const sr = runs.get(seq);
      if (sr !== undefined) {
        // A stop inside the run dropped the tokens after it.
        const appended = seq.tokenIds.length - sr.before;
        tokenIds = sr.run.slice(0, appended);
        logprobs = sr.logprobs === null ? null : sr.logprobs.slice(0, appended);
        spec!.settle(seq, sr.accepted, sr.proposed);
      } else {
        const token = value as number;
        const res = results.get(seq)!;
        tokenIds = [token];
        logprobs = req.params.logprobs === null ? null : [{ token, logprob: res.logprob, top: res.top ?? [] }];
      }
      const last = tokenIds[tokenIds.length - 1];
      const delta: SeqDelta = {
        requestId: req.id,
        index: seq.index,
        tokenIds,
        logprobs,
        finishReason: seq.status === "finished" ? seq.finishReason : null,
        numPromptTokens: req.promptTokenIds.length,
      };
      if (seq.numOutputTokens === tokenIds.length) delta.numCachedTokens = req.numCachedTokens;
      if (delta.finishReason === "stop" && last !== undefined && this.#isStopToken(req.params, last)) {
        delta.stopTokenId = last;
      }
      deltas.push(delta);
      this.#generationTokens += tokenIds.length;
    }
    for (const seq of finished) {
      this.#count(seq.finishReason ?? "stop");
      this.#forgetIfDone(seq.request);
    }
    return deltas;
  }

  stats(): EngineStats {
    const s = this.scheduler;
    const kv = s.kvStats();
    return {
      numRunning: s.numRunning,
      numWaiting: s.numWaiting,
      kvBlocksUsed: kv.used,
      kvBlocksTotal: kv.total,
      kvBlockSize: this.config.blockSize,
      prefixCacheQueries: kv.queries,
      prefixCacheHits: kv.hits,
      numPreemptions: s.numPreemptions,
      promptTokens: this.#promptTokens,
      generationTokens: this.#generationTokens,
      finished: { ...this.#finished },
      steps: this.#steps,
      computedTokens: this.#computedTokens,
      specProposedTokens: this.#spec?.stats.proposed ?? 0,
      specAcceptedTokens: this.#spec?.stats.accepted ?? 0,
      specSteps: this.#spec?.stats.steps ?? 0,
      specAcceptedPerPosition: this.#spec ? [...this.#spec.stats.acceptedPerPosition] : [],
    };
  }

  /** The sequence's sampling rng, created on first use (seeded requests: from seed and index). */
  #rngOf(seq: Sequence): Rng {
    if (!seq.rng) {
      const seed = seq.request.params.seed;
      seq.rng = seed === null ? Rng.random() : new Rng(seqSeed(seed, seq.index));
    }
    return seq.rng as Rng;
  }

  #sampleInto(
    seq: Sequence,
    row: Float32Array,
    sampled: Map<Sequence, number | number[]>,
    results: Map<Sequence, SampleResult>,
  ): void {
    const req = seq.request;
    const res = this.#sampler.sample(row, {
      params: req.params,
      rng: this.#rngOf(seq),
      promptTokenIds: req.promptTokenIds,
      outputTokenIds: seq.outputTokenIds,
      eosTokenIds: this.#eos,
    });
    sampled.set(seq, res.token);
    results.set(seq, res);
  }

  #isStopToken(params: SamplingParams, token: number): boolean {
    return params.stopTokenIds.includes(token) || (!params.ignoreEos && this.#eos.includes(token));
  }

  /** The last delta of a sequence that ended without a new token. */
  #endDelta(seq: Sequence, reason: FinishReason): SeqDelta {
    this.#count(reason);
    this.#forgetIfDone(seq.request);
    return {
      requestId: seq.request.id,
      index: seq.index,
      tokenIds: [],
      logprobs: null,
      finishReason: reason,
      numPromptTokens: seq.request.promptTokenIds.length,
    };
  }

  #count(reason: string): void {
    this.#finished[reason] = (this.#finished[reason] ?? 0) + 1;
  }

  #forgetIfDone(req: Request): void {
    if (req.sequences.length >= req.params.n && req.sequences.every((s) => s.status === "finished")) {
      this.#requests.delete(req.id);
    }
  }
}
