/**
 * The load generator. Work items arrive on a schedule (all at once, or at --request-rate with gamma gaps of
 * shape --burstiness, as vLLM's benchmark_serving), and at most --concurrency requests are in flight: an
 * arrived request waits, first come first served, for a free slot (TTFT is measured from its send, not its
 * arrival, as vLLM does). A multi-turn item sends its next turn when the previous answer is complete; that
 * turn queues for a slot again. Bounded in count (the items) and time (per-request and per-run limits).
 */
import { setMaxListeners } from "node:events";
import http from "node:http";
import type { WorkItem } from "./datasets.ts";
import { arrivalTimes, type BenchRng } from "./random.ts";
import { type ClientOptions, streamRequest } from "./sse-client.ts";
import type { RequestRecord, RequestSpec, StreamResult } from "./types.ts";

export type SendFn = (spec: RequestSpec, opts: ClientOptions) => Promise<StreamResult>;

export interface LoadOptions {
  baseUrl: string;
  model?: string;
  apiKey?: string;
  items: readonly WorkItem[];
  /** Most requests in flight; null = no limit. */
  concurrency: number | null;
  /** Requests (work items) per second; Infinity = all at once. */
  requestRate: number;
  burstiness: number;
  rng: BenchRng;
  requestTimeoutMs: number;
  /** The whole run's limit: then nothing more is sent and what is in flight is aborted. */
  runTimeoutMs: number;
  signal?: AbortSignal;
  onRequestDone?: (record: RequestRecord) => void;
  /** The HTTP client (tests may substitute one). */
  send?: SendFn;
}

export interface LoadResult {
  records: RequestRecord[];
  /** Seconds from the first send to the last answer. */
  duration: number;
  maxInFlight: number;
  /** Planned arrival time of each work item (ms after the start). */
  arrivals: number[];
  /** Whether the run time limit or the signal cut the run short. */
  stopped: boolean;
}

/** A FIFO counting semaphore; a null limit never blocks. */
class Slots {
  #free: number;
  #waiters: (() => void)[] = [];

  constructor(limit: number | null) {
    this.#free = limit ?? Number.POSITIVE_INFINITY;
  }

  acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }

  /** Wakes every waiter (they see the run stopped and give their slot back). */
  releaseAll(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}

/** Turns what the client saw into a record (times relative to the run's clock, in ms). */
export function toRecord(
  res: StreamResult,
  spec: RequestSpec,
  item: number,
  turn: number,
  readyAt: number,
): RequestRecord {
  const latency = res.end - res.start;
  const outputLen = res.usageCompletionTokens ?? res.chunkTimes.length;
  const itl: number[] = [];
  for (let i = 1; i < res.chunkTimes.length; i++) itl.push(res.chunkTimes[i] - res.chunkTimes[i - 1]);
  return {
    item,
    turn,
    ok: res.ok,
    ...(res.error !== undefined ? { error: res.error } : {}),
    promptLen: res.usagePromptTokens ?? spec.promptLen,
    outputLen: res.ok ? outputLen : 0,
    ...(res.cachedTokens !== undefined ? { cachedTokens: res.cachedTokens } : {}),
    start: res.start,
    queueWait: Math.max(0, res.start - readyAt),
    ttft: res.chunkTimes.length > 0 ? res.chunkTimes[0] - res.start : latency,
    latency,
    itl,
  };
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  if (o.concurrency !== null && !(Number.isInteger(o.concurrency) && o.concurrency >= 1)) {
    throw new RangeError(`concurrency must be an integer ≥ 1, got ${o.concurrency}`);
  }
  const send = o.send ?? streamRequest;
  const t0 = performance.now();
  const clock = () => performance.now() - t0;
  const arrivals = arrivalTimes(o.items.length, o.requestRate, o.burstiness, o.rng).map((s) => s * 1000);
  const slots = new Slots(o.concurrency);
  const stop = new AbortController();
  // Every request in flight listens for the stop.
  setMaxListeners(0, stop.signal);
  let stopped = false;
  const halt = () => {
    if (stopped) return;
    stopped = true;
    stop.abort();
    slots.releaseAll();
  };
  const runTimer = setTimeout(halt, o.runTimeoutMs);
  const onOuterAbort = () => halt();
  if (o.signal?.aborted) halt();
  else o.signal?.addEventListener("abort", onOuterAbort, { once: true });

  // One socket per slot: a request never waits in the agent (its send time is when it really goes out).
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency ?? Number.POSITIVE_INFINITY });
  const records: RequestRecord[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let lastEnd = 0;

  const notSent = (item: number, turn: number, spec: RequestSpec | null) => {
    const rec: RequestRecord = {
      item,
      turn,
      ok: false,
      error: "not sent: the run was stopped (time limit or interrupt)",
      promptLen: spec?.promptLen ?? 0,
      outputLen: 0,
      start: clock(),
      queueWait: 0,
      ttft: 0,
      latency: 0,
      itl: [],
    };
    records.push(rec);
    o.onRequestDone?.(rec);
  };

  const runItem = async (index: number): Promise<void> => {
    const item = o.items[index];
    const history: StreamResult[] = [];
    for (let turn = 0; turn < item.turns; turn++) {
      const readyAt = clock();
      if (stopped) {
        for (let t = turn; t < item.turns; t++) notSent(index, t, null);
        return;
      }
      await slots.acquire();
      if (stopped) {
        slots.release();
        for (let t = turn; t < item.turns; t++) notSent(index, t, null);
        return;
      }
      const spec = item.build(turn, history);
      inFlight++;
      if (inFlight > maxInFlight) maxInFlight = inFlight;
      let res: StreamResult;
      try {
        res = await send(spec, {
          baseUrl: o.baseUrl,
          model: o.model,
          apiKey: o.apiKey,
          agent,
          timeoutMs: o.requestTimeoutMs,
          signal: stop.signal,
          clock,
        });
      } finally {
        inFlight--;
        slots.release();
      }
      const rec = toRecord(res, spec, index, turn, readyAt);
      if (res.end > lastEnd) lastEnd = res.end;
      records.push(rec);
      o.onRequestDone?.(rec);
      if (!res.ok) {
        // A conversation cannot go on without the answer it builds on.
        for (let t = turn + 1; t < item.turns; t++) notSent(index, t, null);
        return;
      }
      history.push(res);
    }
  };

  const running: Promise<void>[] = [];
  try {
    for (let i = 0; i < o.items.length; i++) {
      // Timers may fire a little early (ms rounding, the event loop's cached time): sleep again then.
      for (let tries = 0; tries < 5 && !stopped; tries++) {
        const wait = arrivals[i] - clock();
        if (wait <= 0) break;
        await sleep(Math.ceil(wait), stop.signal);
      }
      if (stopped) {
        for (let j = i; j < o.items.length; j++) for (let t = 0; t < o.items[j].turns; t++) notSent(j, t, null);
        break;
      }
      running.push(runItem(i));
    }
    await Promise.all(running);
  } finally {
    clearTimeout(runTimer);
    o.signal?.removeEventListener("abort", onOuterAbort);
    agent.destroy();
  }
  records.sort((a, b) => a.item - b.item || a.turn - b.turn);
  return { records, duration: lastEnd / 1000, maxInFlight, arrivals, stopped };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
