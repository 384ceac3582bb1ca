/**
 * One benchmark run against a server: build the dataset, (optionally) warm up, drive the load, summarize.
 * `loom bench serve` and `loom bench compare` both go through here.
 */
import { buildDataset, countRequests, type DatasetName, type DatasetOptions, PromptMaker } from "./datasets.ts";
import { runLoad, type SendFn } from "./load.ts";
import { summarize } from "./metrics.ts";
import { createProgress } from "./progress.ts";
import { BenchRng } from "./random.ts";
import { type ApiTarget, firstModel, scrapeCounters, tokenize } from "./server-api.ts";
import type { RunResult, Slo } from "./types.ts";

/** Prometheus counters of Loom (and vLLM) worth keeping with a run: deltas over the run. */
export const SERVER_COUNTERS = [
  "vllm:prefix_cache_queries",
  "vllm:prefix_cache_hits",
  "vllm:num_preemptions_total",
  "vllm:prompt_tokens_total",
  "vllm:generation_tokens_total",
] as const;

export interface ServerSetup {
  target: ApiTarget;
  /** Sent as `model` (undefined: leave it out). */
  model: string | undefined;
  maker: PromptMaker;
}

/** Asks the server for its model name and calibrates prompt lengths with its tokenizer. */
export async function probeServer(target: ApiTarget, model?: string): Promise<ServerSetup> {
  const name = model ?? (await firstModel(target));
  const ids = await tokenize(target, PromptMaker.sampleText(), name);
  return { target, model: name, maker: PromptMaker.fromTokenization(ids) };
}

export interface RunSpec {
  label: string;
  group: string;
  dataset: DatasetName;
  data: DatasetOptions;
  concurrency: number | null;
  /** Infinity: all at once. */
  requestRate: number;
  burstiness: number;
  seed: number;
  slo: Slo;
  /** Requests sent first and not measured (random prompts of another seed; concurrency-limited). */
  warmup: number;
  requestTimeoutMs: number;
  runTimeoutMs: number;
  progress: boolean;
  signal?: AbortSignal;
  /** Test hook. */
  send?: SendFn;
  /** Anything else to keep in the run's config (server flags...). */
  notes?: Record<string, unknown>;
}

export async function runBenchmark(setup: ServerSetup, spec: RunSpec): Promise<RunResult> {
  const { target, model, maker } = setup;
  if (spec.warmup > 0 && !spec.signal?.aborted) {
    const items = buildDataset(
      "random",
      {
        ...spec.data,
        numPrompts: spec.warmup,
        rangeRatio: 0,
        ignoreEos: true,
        outputLen: Math.min(spec.data.outputLen, 16),
      },
      maker,
      new BenchRng(spec.seed ^ 0x5eed),
    );
    const warm = await runLoad({
      baseUrl: target.baseUrl,
      apiKey: target.apiKey,
      model,
      items,
      concurrency: spec.concurrency,
      requestRate: Number.POSITIVE_INFINITY,
      burstiness: 1,
      rng: new BenchRng(spec.seed),
      requestTimeoutMs: spec.requestTimeoutMs,
      runTimeoutMs: spec.runTimeoutMs,
      signal: spec.signal,
      send: spec.send,
    });
    const bad = warm.records.find((r) => !r.ok);
    if (bad && !spec.signal?.aborted) throw new Error(`warm-up request failed: ${bad.error}`);
  }

  const rng = new BenchRng(spec.seed);
  const items = buildDataset(spec.dataset, spec.data, maker, rng);
  const total = countRequests(items);
  const before = await scrapeCounters(target, SERVER_COUNTERS);
  const progress = createProgress(spec.label, total, spec.progress);
  const cpu0 = process.cpuUsage();
  let load: Awaited<ReturnType<typeof runLoad>>;
  try {
    load = await runLoad({
      baseUrl: target.baseUrl,
      apiKey: target.apiKey,
      model,
      items,
      concurrency: spec.concurrency,
      requestRate: spec.requestRate,
      burstiness: spec.burstiness,
      rng: new BenchRng(spec.seed + 1),
      requestTimeoutMs: spec.requestTimeoutMs,
      runTimeoutMs: spec.runTimeoutMs,
      signal: spec.signal,
      send: spec.send,
      onRequestDone: (r) => progress.done(r),
    });
  } finally {
    progress.stop();
  }
  const cpu = process.cpuUsage(cpu0);
  const after = await scrapeCounters(target, SERVER_COUNTERS);
  const serverNotes: Record<string, number> = {};
  for (const k of Object.keys(after)) serverNotes[k] = after[k] - (before[k] ?? 0);

  const d = spec.data;
  return {
    label: spec.label,
    group: spec.group,
    config: {
      url: target.baseUrl,
      model,
      dataset: spec.dataset,
      endpoint: d.endpoint,
      numPrompts: total,
      concurrency: spec.concurrency,
      requestRate: Number.isFinite(spec.requestRate) ? spec.requestRate : null,
      burstiness: spec.burstiness,
      inputLen: d.inputLen,
      outputLen: d.outputLen,
      rangeRatio: spec.dataset === "fixed" ? 0 : d.rangeRatio,
      ...(spec.dataset === "shared-prefix"
        ? { numGroups: d.numGroups, groupSize: d.groupSize, prefixLen: d.prefixLen }
        : {}),
      ...(spec.dataset === "multi-turn" ? { numTurns: d.numTurns } : {}),
      ignoreEos: spec.dataset === "fixed" || d.ignoreEos,
      seed: spec.seed,
      slo: spec.slo,
      warmup: spec.warmup,
      promptsCalibrated: maker.calibrated,
      promptKind: d.endpoint === "completions" && maker.hasIds ? "token ids" : "words",
      stoppedEarly: load.stopped,
      // The load generator's own CPU time: on a small machine it competes with the server for cores.
      clientCpuSeconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(3)),
      ...spec.notes,
    },
    summary: summarize(load.records, load.duration, spec.slo, load.maxInFlight),
    requests: load.records,
    ...(Object.keys(serverNotes).length ? { serverNotes } : {}),
  };
}
