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
  #promptTokens = 0;
  #generationTokens = 0;
  #steps = 0;
  #computedTokens = 0;
  readonly #finished: Record<string, number> = {};

  constructor(
    readonly model: LoadedModel,
    readonly config: CoreConfig,
  ) {
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
    const plan = this.scheduler.schedule();
    // Sequences that can never fit the pool end with "length" (only when the pool is smaller than max_model_len).
    const capacityFinished = plan.finished.map((seq) => this.#endDelta(seq, "length"));
    if (plan.items.length === 0) return capacityFinished;
    this.#steps++;
    this.#computedTokens += plan.numTokens;
    const { logits, samplers } = this.runner.execute(plan);
    const V = this.model.config.vocabSize;
    const sampled = new Map<Sequence, number>();
    const results = new Map<Sequence, SampleResult>();
    for (let i = 0; i < samplers.length; i++) {
      const seq = samplers[i];
      const row = logits.subarray(i * V, (i + 1) * V);
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
    for (const [seq, token] of sampled) {
      const res = results.get(seq)!;
      const req = seq.request;
      const logprobs: TokenLogprob[] | null =
        req.params.logprobs === null ? null : [{ token, logprob: res.logprob, top: res.top ?? [] }];
      const delta: SeqDelta = {
        requestId: req.id,
        index: seq.index,
        tokenIds: [token],
        logprobs,
        finishReason: seq.status === "finished" ? seq.finishReason : null,
        numPromptTokens: req.promptTokenIds.length,
      };
      if (seq.numOutputTokens === 1) delta.numCachedTokens = req.numCachedTokens;
      if (delta.finishReason === "stop" && token !== undefined && this.#isStopToken(req.params, token)) {
        delta.stopTokenId = token;
      }
      deltas.push(delta);
    }
    this.#generationTokens += sampled.size;
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
    };
  }

  #sampleInto(
    seq: Sequence,
    row: Float32Array,
    sampled: Map<Sequence, number>,
    results: Map<Sequence, SampleResult>,
  ): void {
    const req = seq.request;
    if (!seq.rng) {
      const seed = req.params.seed;
      seq.rng = seed === null ? Rng.random() : new Rng(seqSeed(seed, seq.index));
    }
    const res = this.#sampler.sample(row, {
      params: req.params,
      rng: seq.rng as Rng,
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
