/**
 * One generation run: the engine requests behind one HTTP request (a completions batch has one per prompt),
 * merged into a single stream of deltas, with admission control, client-disconnect / drain aborts and the
 * per-request metrics (TTFT, inter-token latency, e2e, token counts).
 */
import { setMaxListeners } from "node:events";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { GenerationDelta } from "../engine/types.ts";
import type { Abortable, Loaded, RequestScope } from "./context.ts";
import { ApiError, fromEngineError } from "./errors.ts";
import type { GenRequest } from "./requests.ts";

export interface RunItem {
  /** Index of the prompt (engine request) the delta belongs to. */
  prompt: number;
  delta: GenerationDelta;
}

/** Why a run was aborted. */
export type AbortCause = "client" | "drain" | "error";

export class GenerationRun implements Abortable {
  readonly #controller = new AbortController();
  readonly #iters: AsyncIterator<GenerationDelta>[] = [];
  #cause: AbortCause | null = null;

  constructor(
    private readonly scope: RequestScope,
    private readonly loaded: Loaded,
    private readonly request: GenRequest,
    /** Engine request ids are `${baseId}-${promptIndex}`. */
    private readonly baseId: string,
  ) {
    // Every engine request of a batch (up to MAX_BATCH_PROMPTS) listens on this one signal: not a leak.
    setMaxListeners(request.prompts.length + 10, this.#controller.signal);
  }

  get cause(): AbortCause | null {
    return this.#cause;
  }

  /** Aborts every engine request of the run (their streams end with finish_reason "abort"). */
  abort(cause: AbortCause = "drain"): void {
    if (this.#controller.signal.aborted) return;
    this.#cause = cause;
    this.#controller.abort();
  }

  /** 429 when the engine's queue is full. */
  static admit(scope: RequestScope, loaded: Loaded): void {
    const { config, metrics } = scope.ctx;
    const waiting = loaded.engine.numWaiting();
    if (waiting >= config.maxQueuedRequests) {
      metrics.rejected.inc({ reason: "queue_full" });
      throw new ApiError(
        429,
        `the server is busy: ${waiting} requests are waiting (limit ${config.maxQueuedRequests}); retry later`,
        { code: "queue_full", headers: { "retry-after": String(config.retryAfterSeconds) } },
      );
    }
  }

  /**
   * Submits every prompt to the engine. A client error (bad parameter, prompt too long...) aborts what was
   * already submitted and throws an ApiError; anything else is rethrown as is (→ 500).
   */
  async start(): Promise<void> {
    const { prompts, params, priority, cacheSalt, promptParam, paramNames } = this.request;
    try {
      for (let i = 0; i < prompts.length; i++) {
        // Tokenizing happens on this thread: let other requests (and /health) in between batch prompts.
        if (i > 0) await yieldToLoop();
        if (this.#controller.signal.aborted) break;
        const stream = this.loaded.engine.generate(prompts[i], params, {
          requestId: `${this.baseId}-${i}`,
          priority,
          cacheSalt,
          signal: this.#controller.signal,
        });
        this.#iters.push(stream[Symbol.asyncIterator]());
      }
    } catch (e) {
      this.#stopAll();
      throw fromEngineError(e, promptParam, paramNames) ?? e;
    }
  }

  #stopAll(): void {
    if (!this.#controller.signal.aborted) {
      this.#cause ??= "error";
      this.#controller.abort();
    }
    for (const it of this.#iters) it.return?.().catch(() => {});
  }

  /** Every delta of every prompt, in arrival order. Stopping early aborts the rest. */
  async *items(): AsyncGenerator<RunItem> {
    const queue: RunItem[] = [];
    let wake: (() => void) | null = null;
    let active = this.#iters.length;
    let error: unknown = null;
    const notify = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    this.#iters.forEach((it, prompt) => {
      void this.#pump(it, (delta) => {
        queue.push({ prompt, delta });
        notify();
      })
        .catch((e) => {
          error ??= e;
        })
        .finally(() => {
          active--;
          notify();
        });
    });
    let finished = false;
    try {
      while (true) {
        while (queue.length > 0) yield queue.shift()!;
        if (error !== null) {
          const { promptParam, paramNames } = this.request;
          throw fromEngineError(error, promptParam, paramNames) ?? error;
        }
        if (active === 0) {
          finished = true;
          return;
        }
        await new Promise<void>((r) => {
          wake = r;
        });
      }
    } finally {
      if (!finished) this.#stopAll();
    }
  }

  /** Iterates one engine request, observing its latency metrics. */
  async #pump(it: AsyncIterator<GenerationDelta>, emit: (d: GenerationDelta) => void): Promise<void> {
    const { metrics } = this.scope.ctx;
    const l = metrics.labels;
    let firstAt = 0;
    let lastAt = 0;
    let promptTokens = 0;
    let generated = 0;
    let finishedSeqs = 0;
    while (true) {
      const r = await it.next();
      if (r.done) break;
      const d = r.value;
      const now = performance.now();
      promptTokens = d.numPromptTokens;
      if (d.tokenIds.length > 0) {
        generated += d.tokenIds.length;
        if (firstAt === 0) {
          firstAt = now;
          metrics.ttft.observe(l, (now - this.scope.arrival) / 1000);
        } else {
          metrics.itl.observe(l, (now - lastAt) / 1000);
        }
        lastAt = now;
      }
      if (d.finishReason) finishedSeqs++;
      emit(d);
    }
    if (finishedSeqs > 0) {
      metrics.e2e.observe(l, (performance.now() - this.scope.arrival) / 1000);
      metrics.requestPromptTokens.observe(l, promptTokens);
      metrics.requestGenerationTokens.observe(l, generated);
    }
  }
}
