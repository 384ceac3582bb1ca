/**
 * EngineClient: the Engine on the caller's thread. Tokenizes and validates requests, sends them to the
 * engine core on its own worker thread, and turns the token deltas coming back into text (incremental
 * detokenization, stop strings) per request. The caller's event loop never waits on compute.
 */
import { randomUUID } from "node:crypto";
import { Worker } from "node:worker_threads";
import { normalizeSamplingParams, ParamError } from "../sampler/params.ts";
import { StopStringMatcher } from "../sampler/stop-strings.ts";
import { RequestRejectedError } from "../scheduler/scheduler.ts";
import { IncrementalDetokenizer } from "../tokenizer/incremental-detokenizer.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { type Engine, PromptTooLongError } from "./engine.ts";
import type { CoreWorkerData, FromCore, ToCore } from "./messages.ts";
import type { EngineOptions } from "./options.ts";
import type {
  EngineInfo,
  EngineStats,
  FinishReason,
  GenerateOptions,
  GenerationDelta,
  Prompt,
  SamplingParams,
  SeqDelta,
} from "./types.ts";

export interface Logger {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
}

/** Text state of one sequence of a request. */
interface SeqText {
  detok: IncrementalDetokenizer;
  stops: StopStringMatcher;
  done: boolean;
}

/** Client-side state of one request: a queue the generator drains. */
class Pending {
  readonly seqs = new Map<number, SeqText>();
  readonly queue: GenerationDelta[] = [];
  wake: (() => void) | null = null;
  error: Error | null = null;
  numDone = 0;

  constructor(
    readonly id: string,
    readonly params: SamplingParams,
    readonly promptIds: number[],
  ) {}

  push(d: GenerationDelta): void {
    this.queue.push(d);
    this.#notify();
  }
  fail(e: Error): void {
    this.error = e;
    this.#notify();
  }
  #notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
  get finished(): boolean {
    return this.numDone >= this.params.n;
  }
}

/** How long close() waits for the engine thread to finish its step and exit before terminating it. */
const CLOSE_GRACE_MS = 10_000;

export class EngineClient implements Engine {
  readonly #worker: Worker;
  readonly #pending = new Map<string, Pending>();
  readonly #statsWaiters = new Map<number, (s: EngineStats) => void>();
  #ticket = 0;
  #numWaiting = 0;
  #sentSinceReport = 0;
  #closed = false;
  /** Resolves when the engine thread has exited (after a shutdown, a crash or a terminate). */
  readonly #exited: Promise<void>;

  private constructor(
    readonly info: EngineInfo,
    readonly tokenizer: Tokenizer,
    worker: Worker,
    readonly opts: EngineOptions,
  ) {
    this.#worker = worker;
    worker.on("message", (m: FromCore) => this.#onMessage(m));
    worker.on("error", (e) => this.#failAll(new Error(`engine thread crashed: ${e.message}`)));
    worker.on("exit", () => this.#failAll(new Error("engine thread exited")));
    this.#exited = new Promise((resolve) => worker.once("exit", () => resolve()));
  }

  /** Loads the tokenizer here and the model on a new engine thread; resolves once it is ready. */
  static async create(opts: EngineOptions, log?: Logger): Promise<EngineClient> {
    const tokenizer = await Tokenizer.load(opts.model);
    const worker = new Worker(new URL("./core-worker.mjs", import.meta.url), {
      workerData: { opts } satisfies CoreWorkerData,
    });
    // Only our own listeners may be removed afterwards: Worker keeps internal ones (removeAllListeners breaks it).
    let onMessage: (m: FromCore) => void = () => {};
    let onError: (e: Error) => void = () => {};
    let onExit: (code: number) => void = () => {};
    const ready = await new Promise<Extract<FromCore, { type: "ready" }>>((resolve, reject) => {
      onMessage = (m: FromCore) => {
        if (m.type === "ready") resolve(m);
        else if (m.type === "initError") reject(new Error(m.message));
      };
      onError = reject;
      onExit = (code) => reject(new Error(`engine thread exited with code ${code} while starting`));
      worker.on("message", onMessage).on("error", onError).on("exit", onExit);
    }).catch(async (e) => {
      await worker.terminate();
      throw e;
    });
    worker.off("message", onMessage).off("error", onError).off("exit", onExit);
    if (ready.warning) (log ?? console).warn(ready.warning);
    return new EngineClient(ready.info, tokenizer, worker, opts);
  }

  /** Prompt → token ids (chat messages through the model's template). */
  tokenize(prompt: Prompt): number[] {
    if ("tokenIds" in prompt) {
      for (const id of prompt.tokenIds) {
        if (!Number.isInteger(id) || id < 0 || id >= this.info.vocabSize) {
          throw new ParamError("prompt", `token id ${id} is outside the vocabulary [0, ${this.info.vocabSize})`);
        }
      }
      return prompt.tokenIds.slice();
    }
    if ("messages" in prompt) {
      if (!this.tokenizer.hasChatTemplate) throw new ParamError("messages", "this model has no chat template");
      const text = this.tokenizer.applyChatTemplate(prompt.messages, {
        addGenerationPrompt: prompt.addGenerationPrompt ?? true,
      });
      return this.tokenizer.encode(text, { addSpecialTokens: false });
    }
    return this.tokenizer.encode(prompt.text);
  }

  generate(
    prompt: Prompt,
    params: Partial<SamplingParams>,
    opts: GenerateOptions = {},
  ): AsyncIterable<GenerationDelta> {
    const promptIds = this.tokenize(prompt);
    const maxModelLen = this.info.maxModelLen;
    if (promptIds.length === 0) throw new ParamError("prompt", "the prompt is empty");
    if (promptIds.length + 1 > maxModelLen) throw new PromptTooLongError(promptIds.length, maxModelLen);
    const blocksNeeded = Math.ceil((promptIds.length + 1) / this.info.blockSize);
    if (blocksNeeded > this.info.numBlocks) {
      throw new RequestRejectedError(
        `the prompt needs ${blocksNeeded} KV cache blocks but the pool has only ${this.info.numBlocks}`,
      );
    }
    const sp = normalizeSamplingParams(params, {
      vocabSize: this.info.vocabSize,
      maxModelLen,
      defaultMaxTokens: this.opts.defaultMaxTokens,
    });
    // The scheduler would reject it too, but as a RequestRejectedError that names the prompt.
    if (sp.n > this.opts.maxNumSeqs) {
      throw new ParamError("n", `n must be at most ${this.opts.maxNumSeqs} (--max-num-seqs), got ${sp.n}`);
    }
    // Never ask for more tokens than the context has room for.
    sp.maxTokens = Math.min(sp.maxTokens, maxModelLen - promptIds.length);
    sp.minTokens = Math.min(sp.minTokens, sp.maxTokens);
    if (this.#closed) throw new Error("the engine is shut down");
    const id = opts.requestId ?? randomUUID();
    if (this.#pending.has(id)) throw new ParamError("request_id", `request id ${id} is already in flight`);
    const p = new Pending(id, sp, promptIds);
    this.#pending.set(id, p);
    this.#sentSinceReport++;
    this.#post({
      type: "add",
      req: {
        id,
        promptTokenIds: promptIds,
        params: sp,
        priority: opts.priority ?? 0,
        cacheSalt: opts.cacheSalt ?? null,
      },
    });
    return this.#stream(p, opts.signal);
  }

  async *#stream(p: Pending, signal?: AbortSignal): AsyncGenerator<GenerationDelta> {
    const onAbort = () => this.#abortPending(p);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
    try {
      while (true) {
        while (p.queue.length) yield p.queue.shift()!;
        if (p.error) throw p.error;
        if (p.finished) return;
        await new Promise<void>((r) => {
          p.wake = r;
        });
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      // The consumer stopped early (break, throw, disconnect): abort what is left.
      if (!p.finished && this.#pending.has(p.id)) this.abort(p.id);
    }
  }

  abort(requestId: string): void {
    const p = this.#pending.get(requestId);
    if (p) this.#abortPending(p);
  }

  #abortPending(p: Pending): void {
    if (!this.#pending.has(p.id)) return;
    this.#post({ type: "abort", id: p.id });
    for (let i = 0; i < p.params.n; i++) {
      const s = this.#seq(p, i);
      if (!s.done) this.#finishText(p, i, s, "abort", "");
    }
    this.#pending.delete(p.id);
  }

  numWaiting(): number {
    return this.#numWaiting + this.#sentSinceReport;
  }

  stats(): Promise<EngineStats> {
    const ticket = ++this.#ticket;
    return new Promise((resolve) => {
      this.#statsWaiters.set(ticket, resolve);
      this.#post({ type: "stats", ticket });
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of [...this.#pending.values()]) this.#abortPending(p);
    // The engine thread ends the step it is in and exits on its own. Terminating it at once would stop it
    // inside a native call (a forward pass), whose return then meets a dying environment; terminate only a
    // thread that does not exit within CLOSE_GRACE_MS.
    this.#post({ type: "shutdown" });
    const grace = setTimeout(() => void this.#worker.terminate(), CLOSE_GRACE_MS);
    await this.#exited;
    clearTimeout(grace);
  }

  #post(m: ToCore): void {
    if (!this.#closed || m.type === "shutdown" || m.type === "abort") this.#worker.postMessage(m);
  }

  #seq(p: Pending, index: number): SeqText {
    let s = p.seqs.get(index);
    if (!s) {
      s = {
        detok: new IncrementalDetokenizer(this.tokenizer, {
          skipSpecialTokens: p.params.skipSpecialTokens,
          promptIds: p.promptIds,
        }),
        stops: new StopStringMatcher(p.params.stop, p.params.includeStopStrInOutput),
        done: false,
      };
      p.seqs.set(index, s);
    }
    return s;
  }

  #onMessage(m: FromCore): void {
    switch (m.type) {
      case "deltas":
        // The core's count, plus requests sent since it made it (an estimate that errs by at most one step).
        this.#numWaiting = m.numWaiting;
        this.#sentSinceReport = 0;
        for (const d of m.deltas) this.#onDelta(d);
        return;
      case "rejected": {
        const p = this.#pending.get(m.id);
        if (p) {
          this.#pending.delete(m.id);
          p.fail(new RequestRejectedError(m.message));
        }
        return;
      }
      case "stats": {
        const w = this.#statsWaiters.get(m.ticket);
        this.#statsWaiters.delete(m.ticket);
        w?.(m.stats);
        return;
      }
    }
  }

  #onDelta(d: SeqDelta): void {
    const p = this.#pending.get(d.requestId);
    if (!p) return;
    const s = this.#seq(p, d.index);
    if (s.done) return;
    let text = s.detok.push(d.tokenIds);
    if (d.finishReason) text += s.detok.flush();
    const hit = s.stops.push(text);
    if (hit.stopped) {
      this.#post({ type: "finishSeq", id: p.id, index: d.index, reason: "stop" });
      this.#finishText(p, d.index, s, "stop", hit.text, d);
    } else if (d.finishReason) {
      this.#finishText(p, d.index, s, d.finishReason, hit.text + s.stops.flush(), d);
    } else {
      p.push({ ...d, text: hit.text });
    }
    if (p.finished) this.#pending.delete(p.id);
  }

  #finishText(p: Pending, index: number, s: SeqText, reason: FinishReason, text: string, d?: SeqDelta): void {
    s.done = true;
    p.numDone++;
    const base: SeqDelta = d ?? {
      requestId: p.id,
      index,
      tokenIds: [],
      logprobs: null,
      finishReason: reason,
      numPromptTokens: p.promptIds.length,
    };
    p.push({ ...base, finishReason: reason, text });
  }

  #failAll(e: Error): void {
    this.#closed = true;
    for (const p of this.#pending.values()) p.fail(e);
    this.#pending.clear();
  }
}

/** Starts an engine (model on its own thread) for `opts`. */
export function createEngine(opts: EngineOptions, log?: Logger): Promise<EngineClient> {
  return EngineClient.create(opts, log);
}
