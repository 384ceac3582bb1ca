/**
 * Prometheus metrics (prom-client, one registry per server): vLLM's names for the engine and request
 * metrics, plus loom_* extras. Engine gauges and counters are refreshed from `engine.stats()` at scrape time;
 * request histograms are observed by the server as requests run.
 */
import client from "prom-client";
import type { EngineStats } from "../engine/types.ts";

const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560,
];
const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const E2E_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** vLLM's 1-2-5 buckets up to `max` (token-count histograms). */
function buckets125(max: number): number[] {
  const out: number[] = [];
  for (let exp = 1; ; exp *= 10) {
    for (const m of [1, 2, 5]) {
      if (m * exp > max) return out;
      out.push(m * exp);
    }
  }
}

/** Largest token-count bucket (vLLM uses max_model_len; the server may start before the model is known). */
const MAX_TOKEN_BUCKET = 1_000_000;

/** Engine counters that the engine keeps cumulatively; the server adds the difference at each scrape. */
type CumulativeKey =
  | "prefixCacheQueries"
  | "prefixCacheHits"
  | "numPreemptions"
  | "promptTokens"
  | "generationTokens"
  | "specProposedTokens"
  | "specAcceptedTokens"
  | "specSteps";

export class ServerMetrics {
  readonly registry = new client.Registry();
  /** Set once the engine is known (see setModel). */
  readonly labels = { model_name: "" };

  readonly numRunning: client.Gauge<"model_name">;
  readonly numWaiting: client.Gauge<"model_name">;
  readonly kvUsage: client.Gauge<"model_name">;
  readonly kvBlocksUsed: client.Gauge<"model_name">;
  readonly kvBlocksTotal: client.Gauge<"model_name">;
  readonly engineSteps: client.Counter<"model_name">;
  readonly cumulative: Record<CumulativeKey, client.Counter<"model_name">>;
  readonly requestSuccess: client.Counter<"model_name" | "finished_reason">;
  readonly ttft: client.Histogram<"model_name">;
  readonly itl: client.Histogram<"model_name">;
  readonly e2e: client.Histogram<"model_name">;
  readonly requestPromptTokens: client.Histogram<"model_name">;
  readonly requestGenerationTokens: client.Histogram<"model_name">;
  readonly httpRequests: client.Counter<"route" | "status">;
  readonly httpDuration: client.Histogram<"route">;
  readonly rejected: client.Counter<"reason">;
  readonly clientDisconnects: client.Counter<"route">;
  readonly inflight: client.Gauge;
  readonly serverState: client.Gauge<"state">;

  readonly #last: Record<CumulativeKey | "steps", number> = {
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    numPreemptions: 0,
    promptTokens: 0,
    generationTokens: 0,
    specProposedTokens: 0,
    specAcceptedTokens: 0,
    specSteps: 0,
    steps: 0,
  };
  readonly #lastFinished: Record<string, number> = {};

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const m = ["model_name"] as const;
    const gauge = (name: string, help: string) => new client.Gauge({ name, help, labelNames: m, registers });
    const counter = (name: string, help: string) => new client.Counter({ name, help, labelNames: m, registers });
    const histogram = (name: string, help: string, buckets: number[]) =>
      new client.Histogram({ name, help, labelNames: m, buckets, registers });

    this.numRunning = gauge("vllm:num_requests_running", "Number of requests in model execution batches.");
    this.numWaiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.");
    this.kvUsage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.");
    this.kvBlocksUsed = gauge("loom_kv_blocks_used", "KV cache blocks in use.");
    this.kvBlocksTotal = gauge("loom_kv_blocks_total", "KV cache blocks in the pool.");
    this.engineSteps = counter("loom_engine_steps_total", "Engine iterations run.");
    this.cumulative = {
      prefixCacheQueries: counter(
        "vllm:prefix_cache_queries",
        "Prefix cache queries, in terms of number of queried tokens.",
      ),
      prefixCacheHits: counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."),
      numPreemptions: counter("vllm:num_preemptions_total", "Cumulative number of preemptions from the engine."),
      promptTokens: counter("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
      generationTokens: counter("vllm:generation_tokens_total", "Number of generation tokens processed."),
      specProposedTokens: counter("vllm:spec_decode_num_draft_tokens_total", "Speculative tokens proposed."),
      specAcceptedTokens: counter("vllm:spec_decode_num_accepted_tokens_total", "Speculative tokens accepted."),
      specSteps: counter("vllm:spec_decode_num_drafts_total", "Speculative proposals verified (steps × sequences)."),
    };
    this.requestSuccess = new client.Counter({
      name: "vllm:request_success_total",
      help: "Count of finished requests (sequences), by finish reason.",
      labelNames: ["model_name", "finished_reason"],
      registers,
    });
    this.ttft = histogram(
      "vllm:time_to_first_token_seconds",
      "Histogram of time to first token in seconds.",
      TTFT_BUCKETS,
    );
    this.itl = histogram(
      "vllm:inter_token_latency_seconds",
      "Histogram of inter-token latency in seconds.",
      ITL_BUCKETS,
    );
    this.e2e = histogram(
      "vllm:e2e_request_latency_seconds",
      "Histogram of e2e request latency in seconds.",
      E2E_BUCKETS,
    );
    const tokenBuckets = buckets125(MAX_TOKEN_BUCKET);
    this.requestPromptTokens = histogram(
      "vllm:request_prompt_tokens",
      "Number of prefill tokens processed.",
      tokenBuckets,
    );
    this.requestGenerationTokens = histogram(
      "vllm:request_generation_tokens",
      "Number of generation tokens processed.",
      tokenBuckets,
    );
    this.httpRequests = new client.Counter({
      name: "loom_http_requests_total",
      help: "HTTP requests answered, by route and status.",
      labelNames: ["route", "status"],
      registers,
    });
    this.httpDuration = new client.Histogram({
      name: "loom_http_request_duration_seconds",
      help: "HTTP request duration (whole response, streams included), by route.",
      labelNames: ["route"],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.rejected = new client.Counter({
      name: "loom_requests_rejected_total",
      help: "Generation requests rejected before reaching the engine, by reason.",
      labelNames: ["reason"],
      registers,
    });
    this.clientDisconnects = new client.Counter({
      name: "loom_client_disconnects_total",
      help: "Requests aborted because the client went away.",
      labelNames: ["route"],
      registers,
    });
    this.inflight = new client.Gauge({
      name: "loom_http_requests_in_flight",
      help: "HTTP requests being handled.",
      registers,
    });
    this.serverState = new client.Gauge({
      name: "loom_server_state",
      help: "1 for the server's current state (starting, ready, draining).",
      labelNames: ["state"],
      registers,
    });
    if (opts.defaultMetrics !== false) client.collectDefaultMetrics({ register: this.registry, prefix: "loom_" });
  }

  /** Sets the model_name label and makes every per-model series visible from the first scrape. */
  setModel(modelName: string): void {
    this.labels.model_name = modelName;
    const l = this.labels;
    for (const c of [...Object.values(this.cumulative), this.engineSteps]) c.inc(l, 0);
    for (const reason of ["stop", "length", "abort"]) this.requestSuccess.inc({ ...l, finished_reason: reason }, 0);
    for (const h of [this.ttft, this.itl, this.e2e, this.requestPromptTokens, this.requestGenerationTokens]) h.zero(l);
  }

  setState(state: string): void {
    for (const s of ["starting", "ready", "draining", "closed"])
      this.serverState.set({ state: s }, s === state ? 1 : 0);
  }

  /** Copies a fresh stats snapshot into the gauges and advances the cumulative counters. */
  update(s: EngineStats): void {
    const l = this.labels;
    this.numRunning.set(l, s.numRunning);
    this.numWaiting.set(l, s.numWaiting);
    this.kvBlocksUsed.set(l, s.kvBlocksUsed);
    this.kvBlocksTotal.set(l, s.kvBlocksTotal);
    this.kvUsage.set(l, s.kvBlocksTotal > 0 ? s.kvBlocksUsed / s.kvBlocksTotal : 0);
    for (const key of Object.keys(this.cumulative) as CumulativeKey[]) {
      const value = s[key] ?? 0;
      const diff = value - this.#last[key];
      if (diff > 0) this.cumulative[key].inc(l, diff);
      this.#last[key] = value;
    }
    const steps = s.steps - this.#last.steps;
    if (steps > 0) this.engineSteps.inc(l, steps);
    this.#last.steps = s.steps;
    for (const [reason, count] of Object.entries(s.finished ?? {})) {
      const diff = count - (this.#lastFinished[reason] ?? 0);
      if (diff > 0) this.requestSuccess.inc({ ...l, finished_reason: reason }, diff);
      this.#lastFinished[reason] = count;
    }
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
