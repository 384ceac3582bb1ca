/** Shared shapes of the serving benchmark: what a request sends, what it records, what a run reports. */

export type Endpoint = "completions" | "chat";

export interface ChatTurn {
  role: "system" | "user" | "assistant";
  content: string;
}

/** One HTTP request the load generator sends (one turn of a work item). */
export interface RequestSpec {
  endpoint: Endpoint;
  /** /v1/completions: token ids (exact length) or text. */
  prompt?: number[] | string;
  /** /v1/chat/completions. */
  messages?: ChatTurn[];
  /** The prompt length the dataset aimed at (the server's usage count replaces it when it reports one). */
  promptLen: number;
  maxTokens: number;
  ignoreEos: boolean;
  /** Extra body fields (temperature...). */
  extra?: Record<string, unknown>;
}

/** What the SSE client saw of one request. Times are milliseconds on the run's clock (0 = run start). */
export interface StreamResult {
  ok: boolean;
  error?: string;
  /** HTTP status (0 when no answer came). */
  status: number;
  /** When the request was sent. */
  start: number;
  /** Arrival time of every chunk that carried generated text. */
  chunkTimes: number[];
  /** When the stream ended ([DONE] or the end of the body). */
  end: number;
  text: string;
  /** usage.completion_tokens / prompt_tokens when the server sent usage (stream_options.include_usage). */
  usageCompletionTokens?: number;
  usagePromptTokens?: number;
  cachedTokens?: number;
  finishReason?: string;
}

/** One finished (or failed) request, as stored in the JSON report. Times in ms. */
export interface RequestRecord {
  /** Work item (conversation) and turn. */
  item: number;
  turn: number;
  ok: boolean;
  error?: string;
  promptLen: number;
  outputLen: number;
  cachedTokens?: number;
  /** Send time relative to the run's start, and how long it waited for a concurrency slot before it. */
  start: number;
  queueWait: number;
  ttft: number;
  /** Wall time from send to the end of the stream. */
  latency: number;
  /** Gaps between successive text chunks (inter-token latencies). */
  itl: number[];
}

export interface Distribution {
  count: number;
  mean: number;
  std: number;
  min: number;
  median: number;
  p90: number;
  p99: number;
  max: number;
}

export interface Slo {
  /** Milliseconds; a request is good when every given bound holds (≤). */
  ttft?: number;
  tpot?: number;
  e2el?: number;
}

export interface RunSummary {
  completed: number;
  failed: number;
  /** Seconds from the first send to the last answer. */
  duration: number;
  totalInputTokens: number;
  totalOutputTokens: number;
  requestThroughput: number;
  outputThroughput: number;
  totalTokenThroughput: number;
  /** Good requests per second (null without SLOs). */
  goodput: number | null;
  goodRequests: number | null;
  maxInFlight: number;
  ttft: Distribution;
  tpot: Distribution;
  itl: Distribution;
  e2el: Distribution;
}

export interface RunConfig {
  url: string;
  dataset: string;
  endpoint: Endpoint;
  numPrompts: number;
  /** null = unbounded. */
  concurrency: number | null;
  requestRate: number | null;
  burstiness: number;
  inputLen: number;
  outputLen: number;
  seed: number;
  slo: Slo;
  [k: string]: unknown;
}

export interface RunResult {
  /** Series name in plots (e.g. "continuous", "prefix caching on", or the dataset). */
  label: string;
  /** Runs of one group are plotted together (e.g. "schedulers", "prefix caching", "sweep"). */
  group: string;
  /** Line name in plots against concurrency (runs of one series differ in concurrency); default: the group. */
  series?: string;
  config: RunConfig;
  summary: RunSummary;
  requests: RequestRecord[];
  /** The server's /metrics lines of interest before and after, when it had them. */
  serverNotes?: Record<string, number>;
}

export interface Ratio {
  name: string;
  value: number | null;
  /** Human explanation: "continuous ÷ naive output throughput". */
  detail: string;
  /** The bar from the issue, when there is one. */
  target?: number;
}

export interface BenchReport {
  tool: "loom bench";
  kind: "serve" | "compare";
  createdAt: string;
  command: string;
  host: { platform: string; cpus: number; node: string };
  runs: RunResult[];
  ratios: Ratio[];
}
