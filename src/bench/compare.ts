/**
 * `loom bench compare`: Loom against its own baselines, each on a fresh `loom serve` child process.
 * 1. Schedulers: the same fixed-length load (ignore_eos) against --scheduler naive, static and continuous.
 * 2. Prefix caching: the shared-prefix dataset against the continuous scheduler with caching on and off.
 * Ratios: continuous ÷ naive output throughput, naive ÷ continuous median E2E latency, prefix caching
 * off ÷ on median TTFT.
 */
import type { DatasetOptions } from "./datasets.ts";
import { ratio } from "./metrics.ts";
import { probeServer, runBenchmark } from "./run.ts";
import { startLoomServer } from "./server-process.ts";
import type { Ratio, RunResult, Slo } from "./types.ts";

export type Scheduler = "naive" | "static" | "continuous";
export const SCHEDULERS: readonly Scheduler[] = ["naive", "static", "continuous"];

export interface CompareOptions {
  /** Flags for every `loom serve` (engine flags: --backend, --model...). */
  serveArgs: string[];
  schedulers: Scheduler[];
  /** Scheduler phase. */
  concurrency: number[];
  numPrompts: number;
  inputLen: number;
  outputLen: number;
  /** Prefix-caching phase (null: skip it). */
  prefix: {
    concurrency: number[];
    numGroups: number;
    groupSize: number;
    prefixLen: number;
    suffixLen: number;
    outputLen: number;
  } | null;
  seed: number;
  slo: Slo;
  warmup: number;
  requestTimeoutMs: number;
  runTimeoutMs: number;
  startTimeoutMs: number;
  progress: boolean;
  signal?: AbortSignal;
  log: (line: string) => void;
}

export const THROUGHPUT_TARGET = 5;
export const TTFT_TARGET = 3;

function dataOptions(o: Partial<DatasetOptions>): DatasetOptions {
  return {
    numPrompts: 1,
    inputLen: 64,
    outputLen: 64,
    rangeRatio: 0,
    numGroups: 1,
    groupSize: 1,
    prefixLen: 1,
    numTurns: 1,
    endpoint: "completions",
    ignoreEos: true,
    ...o,
  };
}

async function withServer<T>(
  o: CompareOptions,
  args: string[],
  what: string,
  fn: (url: string, notes: Record<string, unknown>) => Promise<T>,
): Promise<T> {
  o.log(`starting loom serve ${args.join(" ")} (${what})`);
  const t0 = performance.now();
  const server = await startLoomServer({ args, startTimeoutMs: o.startTimeoutMs });
  o.log(`  ready on ${server.url} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  // E.g. "native cpu backend unavailable …; using the slow reference backend": worth seeing next to the numbers.
  const warnings = server.warnings();
  for (const w of warnings) o.log(`  server warning: ${w}`);
  const backend = typeof server.serving?.backend === "string" ? server.serving.backend : undefined;
  if (backend) o.log(`  backend: ${backend}`);
  const notes: Record<string, unknown> = {
    serveArgs: args.join(" "),
    ...(backend ? { serverBackend: backend } : {}),
    ...(warnings.length ? { serverWarnings: warnings } : {}),
  };
  const onAbort = () => void server.stop();
  o.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await fn(server.url, notes);
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
    await server.stop();
  }
}

export interface CompareResult {
  runs: RunResult[];
  ratios: Ratio[];
  /** Configurations that could not be measured (the server did not start, a warm-up failed...). */
  errors: string[];
}

export async function runCompare(o: CompareOptions): Promise<CompareResult> {
  const runs: RunResult[] = [];
  const errors: string[] = [];
  // One configuration failing (say, a server that does not start) should not lose the others' results.
  const attempt = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      const msg = `${what}: ${(e as Error).message}`;
      errors.push(msg);
      o.log(`error: ${msg}`);
    }
  };
  const common = {
    burstiness: 1,
    requestRate: Number.POSITIVE_INFINITY,
    seed: o.seed,
    slo: o.slo,
    warmup: o.warmup,
    requestTimeoutMs: o.requestTimeoutMs,
    runTimeoutMs: o.runTimeoutMs,
    progress: o.progress,
    signal: o.signal,
  };

  for (const sched of o.schedulers) {
    if (o.signal?.aborted) break;
    const args = ["--scheduler", sched, ...o.serveArgs];
    await attempt(`scheduler ${sched}`, () =>
      withServer(o, args, `scheduler ${sched}`, async (url, notes) => {
        const setup = await probeServer({ baseUrl: url });
        for (const c of o.concurrency) {
          if (o.signal?.aborted) break;
          const label = o.concurrency.length > 1 ? `${sched} c=${c}` : sched;
          const run = await runBenchmark(setup, {
            ...common,
            label,
            group: "schedulers",
            dataset: "fixed",
            data: dataOptions({ numPrompts: o.numPrompts, inputLen: o.inputLen, outputLen: o.outputLen }),
            concurrency: c,
            notes: { scheduler: sched, ...notes },
          });
          run.series = sched;
          runs.push(run);
          o.log(
            `  ${label}: ${run.summary.completed} ok, ${run.summary.failed} failed, ${run.summary.outputThroughput.toFixed(1)} output tok/s, median E2E ${run.summary.e2el.median.toFixed(0)} ms`,
          );
        }
      }),
    );
  }

  if (o.prefix) {
    const p = o.prefix;
    for (const caching of [true, false]) {
      if (o.signal?.aborted) break;
      const args = [...(caching ? [] : ["--no-enable-prefix-caching"]), ...o.serveArgs];
      const name = `prefix caching ${caching ? "on" : "off"}`;
      await attempt(name, () =>
        withServer(o, args, name, async (url, notes) => {
          const setup = await probeServer({ baseUrl: url });
          for (const c of p.concurrency) {
            if (o.signal?.aborted) break;
            const label = p.concurrency.length > 1 ? `${name} c=${c}` : name;
            const run = await runBenchmark(setup, {
              ...common,
              label,
              group: "prefix caching",
              dataset: "shared-prefix",
              data: dataOptions({
                numGroups: p.numGroups,
                groupSize: p.groupSize,
                prefixLen: p.prefixLen,
                inputLen: p.suffixLen,
                outputLen: p.outputLen,
              }),
              concurrency: c,
              notes: { prefixCaching: caching, ...notes },
            });
            run.series = name;
            runs.push(run);
            o.log(
              `  ${label}: ${run.summary.completed} ok, ${run.summary.failed} failed, median TTFT ${run.summary.ttft.median.toFixed(0)} ms, cached prompt tokens ${run.requests.reduce((s, r) => s + (r.cachedTokens ?? 0), 0)}`,
            );
          }
        }),
      );
    }
  }
  // `--backend auto` falls back to the reference backend when the native addon is missing: ratios between
  // servers that ran different backends compare the backends, not the schedulers.
  const backends = [...new Set(runs.map((r) => r.config.serverBackend).filter((b) => b !== undefined))];
  if (backends.length > 1) {
    const msg = `the servers ran different backends (${backends.join(" / ")}): the ratios are not comparable`;
    errors.push(msg);
    o.log(`error: ${msg}`);
  }
  return { runs, ratios: compareRatios(runs), errors };
}

/** The headline ratios of a compare run, per concurrency (suffixed "@cN" when there are several). */
export function compareRatios(runs: readonly RunResult[]): Ratio[] {
  const out: Ratio[] = [];
  // A ratio between servers that ran different backends measures the backends: report none.
  const add = (a: RunResult, b: RunResult, r: Ratio) => {
    const ba = a.config.serverBackend;
    const bb = b.config.serverBackend;
    if (ba !== undefined && bb !== undefined && ba !== bb) {
      out.push({ ...r, value: null, detail: `not comparable: ${a.label} ran ${ba}, ${b.label} ran ${bb}` });
    } else {
      out.push(r);
    }
  };
  const find = (group: string, pred: (r: RunResult) => boolean) =>
    runs.find((r) => r.group === group && pred(r) && r.summary.completed > 0);
  const schedConcs = [...new Set(runs.filter((r) => r.group === "schedulers").map((r) => r.config.concurrency))];
  for (const c of schedConcs) {
    const at = schedConcs.length > 1 ? ` @c${c}` : "";
    const of = (s: Scheduler) => find("schedulers", (r) => r.config.scheduler === s && r.config.concurrency === c);
    const cont = of("continuous");
    const naive = of("naive");
    const stat = of("static");
    if (cont && naive) {
      add(cont, naive, {
        name: `throughput continuous/naive${at}`,
        value: ratio(cont.summary.outputThroughput, naive.summary.outputThroughput),
        detail: "continuous ÷ naive output token throughput",
        target: THROUGHPUT_TARGET,
      });
      add(cont, naive, {
        name: `median E2E naive/continuous${at}`,
        value: ratio(naive.summary.e2el.median, cont.summary.e2el.median),
        detail: "naive ÷ continuous median end-to-end latency (> 1: continuous is faster)",
        target: 1,
      });
    }
    if (cont && stat) {
      add(cont, stat, {
        name: `throughput continuous/static${at}`,
        value: ratio(cont.summary.outputThroughput, stat.summary.outputThroughput),
        detail: "continuous ÷ static output token throughput",
      });
      add(cont, stat, {
        name: `median E2E static/continuous${at}`,
        value: ratio(stat.summary.e2el.median, cont.summary.e2el.median),
        detail: "static ÷ continuous median end-to-end latency",
      });
    }
  }
  const prefixConcs = [...new Set(runs.filter((r) => r.group === "prefix caching").map((r) => r.config.concurrency))];
  for (const c of prefixConcs) {
    const at = prefixConcs.length > 1 ? ` @c${c}` : "";
    const on = find("prefix caching", (r) => r.config.prefixCaching === true && r.config.concurrency === c);
    const off = find("prefix caching", (r) => r.config.prefixCaching === false && r.config.concurrency === c);
    if (on && off) {
      add(on, off, {
        name: `median TTFT prefix off/on${at}`,
        value: ratio(off.summary.ttft.median, on.summary.ttft.median),
        detail: "median TTFT with prefix caching off ÷ on (shared-prefix dataset)",
        target: TTFT_TARGET,
      });
      add(on, off, {
        name: `throughput prefix on/off${at}`,
        value: ratio(on.summary.outputThroughput, off.summary.outputThroughput),
        detail: "output token throughput with prefix caching on ÷ off",
      });
    }
  }
  return out;
}
