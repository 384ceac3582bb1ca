/**
 * `loom bench serve`: load-test an OpenAI-compatible server (Loom, vLLM...) and report TTFT, TPOT, ITL, E2E
 * latency, throughput and goodput; `loom bench compare`: start Loom itself with its baseline schedulers and
 * with prefix caching on/off, run the same load against each, and report the ratios.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { type CompareOptions, type CompareResult, runCompare, SCHEDULERS, type Scheduler } from "../bench/compare.ts";
import { DATASETS, type DatasetName } from "../bench/datasets.ts";
import { parseSlo } from "../bench/metrics.ts";
import { makeReport, writeReport } from "../bench/report.ts";
import { ratiosTable, runBlock, runsTable } from "../bench/report-text.ts";
import { probeServer, runBenchmark } from "../bench/run.ts";
import type { Endpoint, Ratio, RunResult, Slo } from "../bench/types.ts";
import { addEngineFlags } from "../engine/options.ts";

function intOpt(name: string, min: number) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}, got "${v}"`);
    return n;
  };
}

function numOpt(name: string, min: number, exclusiveMin = false, max = Number.POSITIVE_INFINITY) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || (exclusiveMin ? n <= min : n < min) || n >= max) {
      throw new InvalidArgumentError(
        `${name} must be a number ${exclusiveMin ? ">" : "≥"} ${min}${Number.isFinite(max) ? ` and < ${max}` : ""}, got "${v}"`,
      );
    }
    return n;
  };
}

/** "1,4,16" → [1, 4, 16]; "inf" → null (unbounded). */
export function parseConcurrencyList(v: string): (number | null)[] {
  const out = v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      if (/^(inf|infinity|unlimited|none)$/i.test(s)) return null;
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1) {
        throw new InvalidArgumentError(`--concurrency takes integers ≥ 1 (or inf), comma-separated; got "${s}"`);
      }
      return n;
    });
  if (out.length === 0) throw new InvalidArgumentError("--concurrency needs at least one value");
  if (out.length > 32) throw new InvalidArgumentError("--concurrency takes at most 32 values");
  return out;
}

/** "1,2.5,inf" → [1, 2.5, Infinity] requests/s. */
export function parseRateList(v: string): number[] {
  const out = v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      if (/^(inf|infinity)$/i.test(s)) return Number.POSITIVE_INFINITY;
      const n = Number(s);
      if (!Number.isFinite(n) || n <= 0)
        throw new InvalidArgumentError(`--request-rate takes numbers > 0 or inf; got "${s}"`);
      return n;
    });
  if (out.length === 0) throw new InvalidArgumentError("--request-rate needs at least one value");
  if (out.length > 32) throw new InvalidArgumentError("--request-rate takes at most 32 values");
  return out;
}

function sloOpt(v: string): Slo {
  try {
    return parseSlo(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function datasetOpt(v: string): DatasetName {
  if (!(DATASETS as readonly string[]).includes(v))
    throw new InvalidArgumentError(`--dataset must be one of ${DATASETS.join(", ")}`);
  return v as DatasetName;
}

function endpointOpt(v: string): Endpoint {
  if (v !== "completions" && v !== "chat") throw new InvalidArgumentError("--endpoint must be completions or chat");
  return v;
}

function schedulersOpt(v: string): Scheduler[] {
  const out = v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of out) {
    if (!(SCHEDULERS as readonly string[]).includes(s)) {
      throw new InvalidArgumentError(`--schedulers takes ${SCHEDULERS.join(", ")}; got "${s}"`);
    }
  }
  if (out.length === 0) throw new InvalidArgumentError("--schedulers needs at least one scheduler");
  return out as Scheduler[];
}

function commandLine(): string {
  return ["loom", ...process.argv.slice(2)].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
}

/**
 * First Ctrl-C (or SIGTERM) stops the load and any server compare started (what finished is still
 * reported); a second one exits at once (servers started by compare are killed on exit).
 */
function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(sig === "SIGINT" ? 130 : 143);
    console.error(`\n${sig}: stopping (again to exit now)`);
    ac.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

function addOutputFlags(cmd: Command): Command {
  return cmd
    .option("--json <file>", "write the full results (every request) as JSON")
    .option("--html <file>", "write a self-contained HTML report with plots")
    .option("--no-progress", "no progress bar")
    .option("--slo <spec>", "SLOs for goodput, in ms: ttft=500,tpot=50[,e2el=2000]", sloOpt)
    .option("--seed <n>", "random seed (datasets and arrivals)", intOpt("--seed", 0), 0)
    .option("--request-timeout <s>", "per-request limit in seconds", numOpt("--request-timeout", 0, true), 600)
    .option(
      "--timeout <s>",
      "limit for each run in seconds (then it stops and reports what finished)",
      numOpt("--timeout", 0, true),
      3600,
    );
}

function finish(kind: "serve" | "compare", runs: RunResult[], ratios: Ratio[], o: Record<string, unknown>): void {
  const report = makeReport(kind, runs, ratios, commandLine());
  if (runs.length > 1) {
    console.log("");
    console.log(runsTable(runs));
  }
  if (ratios.length) {
    console.log("");
    console.log(ratiosTable(ratios));
  }
  for (const f of writeReport(report, { json: o.json as string | undefined, html: o.html as string | undefined })) {
    console.error(`wrote ${f}`);
  }
}

function registerServeBench(bench: Command): void {
  const cmd = bench
    .command("serve")
    .description(
      "load-test a running OpenAI-compatible server: TTFT, TPOT, ITL, E2E latency, throughput, goodput. " +
        "Several --concurrency (or --request-rate) values run one after another (a sweep); each sweep point " +
        "uses its own seed (seed + index) so prompts are not served from the prefix cache of an earlier point.",
    )
    .option("--url <url>", "server base URL", "http://127.0.0.1:8000")
    .option("--api-key <key>", "bearer token (default: $LOOM_API_KEY or $OPENAI_API_KEY)")
    .option("--model <name>", "model name to send (default: the first one /v1/models lists)")
    .option("--dataset <name>", `${DATASETS.join(" | ")}`, datasetOpt, "random")
    .option("--endpoint <api>", "completions | chat (multi-turn always uses chat)", endpointOpt, "completions")
    .option("--num-prompts <n>", "requests to send (multi-turn: total turns)", intOpt("--num-prompts", 1), 64)
    .option(
      "--input-len <n>",
      "prompt tokens (shared-prefix: the suffix after the shared prefix)",
      intOpt("--input-len", 1),
      128,
    )
    .option("--output-len <n>", "output tokens (max_tokens)", intOpt("--output-len", 1), 64)
    .option(
      "--range-ratio <r>",
      "random: lengths uniform in len·[1−r, 1+r]",
      numOpt("--range-ratio", 0, false, 1),
      0.25,
    )
    .option("--num-groups <n>", "shared-prefix: groups", intOpt("--num-groups", 1), 4)
    .option("--group-size <n>", "shared-prefix: requests per group", intOpt("--group-size", 1), 8)
    .option("--prefix-len <n>", "shared-prefix: tokens of the shared system prompt", intOpt("--prefix-len", 1), 512)
    .option("--num-turns <n>", "multi-turn: turns per conversation", intOpt("--num-turns", 1), 3)
    .option("--ignore-eos", "send ignore_eos (always on for --dataset fixed)")
    .addOption(
      new Option("--concurrency <list>", "most requests in flight, e.g. 16 or a sweep 1,4,16,32 (inf = no limit)")
        .argParser(parseConcurrencyList)
        .default([16], "16"),
    )
    .addOption(
      new Option("--request-rate <list>", "arrivals per second (Poisson; inf = all at once), or a sweep 1,2,4")
        .argParser(parseRateList)
        .default([Number.POSITIVE_INFINITY], "inf"),
    )
    .option(
      "--burstiness <x>",
      "gamma shape of the arrival gaps: 1 = Poisson, < 1 burstier",
      numOpt("--burstiness", 0, true),
      1,
    )
    .option("--warmup <n>", "unmeasured requests sent first", intOpt("--warmup", 0), 0)
    .option("--label <name>", "name of this run in the report (default: the dataset)");
  addOutputFlags(cmd).action(async (o: Record<string, unknown>) => {
    const concs = o.concurrency as (number | null)[];
    const rates = o.requestRate as number[];
    if (concs.length > 1 && rates.length > 1) throw new Error("sweep either --concurrency or --request-rate, not both");
    const dataset = o.dataset as DatasetName;
    const endpoint: Endpoint = dataset === "multi-turn" ? "chat" : (o.endpoint as Endpoint);
    const apiKey =
      (o.apiKey as string | undefined) ?? (process.env.LOOM_API_KEY || process.env.OPENAI_API_KEY || undefined);
    const baseUrl = String(o.url);
    if (!/^https?:\/\/[^/]/.test(baseUrl) || !URL.canParse(baseUrl)) {
      throw new Error(`--url must be an http(s) URL such as http://127.0.0.1:8000, got "${baseUrl}"`);
    }
    const setup = await probeServer({ baseUrl, apiKey }, o.model as string | undefined);
    if (!setup.maker.calibrated) {
      console.error(
        "warning: the server has no POST /tokenize: prompts are words and their token counts are estimates",
      );
    }
    const base = (o.label as string | undefined) ?? dataset;
    const points: { concurrency: number | null; rate: number; label: string }[] =
      rates.length > 1
        ? rates.map((r) => ({ concurrency: concs[0], rate: r, label: `${base} rate=${r}` }))
        : concs.map((c) => ({
            concurrency: c,
            rate: rates[0],
            label: concs.length > 1 ? `${base} c=${c ?? "inf"}` : base,
          }));
    const interrupt = interruptSignal();
    const runs: RunResult[] = [];
    try {
      for (const [i, p] of points.entries()) {
        if (interrupt.signal.aborted) break;
        const run = await runBenchmark(setup, {
          label: p.label,
          group: base,
          dataset,
          data: {
            numPrompts: o.numPrompts as number,
            inputLen: o.inputLen as number,
            outputLen: o.outputLen as number,
            rangeRatio: o.rangeRatio as number,
            numGroups: o.numGroups as number,
            groupSize: o.groupSize as number,
            prefixLen: o.prefixLen as number,
            numTurns: o.numTurns as number,
            endpoint,
            ignoreEos: o.ignoreEos === true,
          },
          concurrency: p.concurrency,
          requestRate: p.rate,
          burstiness: o.burstiness as number,
          seed: (o.seed as number) + i,
          slo: (o.slo as Slo | undefined) ?? {},
          warmup: i === 0 ? (o.warmup as number) : 0,
          requestTimeoutMs: (o.requestTimeout as number) * 1000,
          runTimeoutMs: (o.timeout as number) * 1000,
          progress: o.progress !== false,
          signal: interrupt.signal,
        });
        run.series = base;
        runs.push(run);
        console.log(runBlock(run));
      }
    } finally {
      interrupt.dispose();
    }
    finish("serve", runs, [], o);
    if (runs.some((r) => r.summary.completed === 0)) process.exitCode = 1;
  });
}

/** The engine flags the user gave explicitly, as `loom serve` arguments (--scheduler and caching excluded). */
function explicitEngineArgs(cmd: Command, skip: readonly string[]): string[] {
  const args: string[] = [];
  for (const opt of cmd.options as Option[]) {
    const key = opt.attributeName();
    if (skip.includes(key) || cmd.getOptionValueSource(key) !== "cli") continue;
    const v = cmd.getOptionValue(key);
    if (opt.negate) {
      if (v === false) args.push(opt.long!);
    } else if (opt.isBoolean()) {
      if (v === true) args.push(opt.long!);
    } else {
      args.push(opt.long!, String(v));
    }
  }
  return args;
}

/** Options of `bench compare` that are not engine flags. */
const COMPARE_OWN = [
  "json",
  "html",
  "progress",
  "slo",
  "seed",
  "requestTimeout",
  "timeout",
  "concurrency",
  "numPrompts",
  "inputLen",
  "outputLen",
  "schedulers",
  "prefixConcurrency",
  "numGroups",
  "groupSize",
  "prefixLen",
  "suffixLen",
  "prefixOutputLen",
  "skipSchedulers",
  "skipPrefix",
  "warmup",
  "startTimeout",
  "check",
];

function registerCompare(bench: Command): void {
  const cmd = bench
    .command("compare")
    .description(
      "start `loom serve` with --scheduler naive, static and continuous and run the same load against each, " +
        "then prefix caching on vs off on the shared-prefix dataset; print the ratios. " +
        "Engine flags (--backend, --model, --max-num-seqs...) go to every server; more `loom serve` flags after --.",
    )
    .argument("[serve-args...]", "extra `loom serve` flags, after --")
    .addOption(
      new Option("--concurrency <list>", "requests in flight for the scheduler runs (a list sweeps)")
        .argParser(parseConcurrencyList)
        .default([32], "32"),
    )
    .option("--num-prompts <n>", "requests per scheduler run", intOpt("--num-prompts", 1), 64)
    .option("--input-len <n>", "prompt tokens (fixed dataset)", intOpt("--input-len", 1), 64)
    .option("--output-len <n>", "output tokens (fixed dataset, ignore_eos)", intOpt("--output-len", 1), 64)
    .addOption(
      new Option("--schedulers <list>", "schedulers to compare")
        .argParser(schedulersOpt)
        .default([...SCHEDULERS], SCHEDULERS.join(",")),
    )
    .addOption(
      new Option("--prefix-concurrency <list>", "requests in flight for the prefix-caching runs")
        .argParser(parseConcurrencyList)
        .default([8], "8"),
    )
    .option("--num-groups <n>", "shared-prefix: groups", intOpt("--num-groups", 1), 4)
    .option("--group-size <n>", "shared-prefix: requests per group", intOpt("--group-size", 1), 8)
    .option("--prefix-len <n>", "shared-prefix: shared prompt tokens", intOpt("--prefix-len", 1), 1024)
    .option("--suffix-len <n>", "shared-prefix: tokens after the prefix", intOpt("--suffix-len", 1), 32)
    .option("--prefix-output-len <n>", "shared-prefix: output tokens", intOpt("--prefix-output-len", 1), 16)
    .option("--skip-schedulers", "only the prefix-caching comparison")
    .option("--skip-prefix", "only the scheduler comparison")
    .option("--warmup <n>", "unmeasured requests to each fresh server", intOpt("--warmup", 0), 2)
    .option("--start-timeout <s>", "how long a server may take to load", numOpt("--start-timeout", 0, true), 300)
    .option("--check", "exit 1 unless every ratio with a target meets it");
  addOutputFlags(cmd);
  addEngineFlags(cmd).action(async (serveArgs: string[], o: Record<string, unknown>, self: Command) => {
    for (const [key, flag] of [
      ["scheduler", "--scheduler"],
      ["enablePrefixCaching", "--no-enable-prefix-caching"],
    ] as const) {
      if (self.getOptionValueSource(key) === "cli") {
        console.error(`warning: ${flag} is ignored: compare sets it for each server itself`);
      }
    }
    const engineArgs = explicitEngineArgs(self, [...COMPARE_OWN, "scheduler", "enablePrefixCaching"]);
    const prefixConcs = o.prefixConcurrency as (number | null)[];
    const concs = o.concurrency as (number | null)[];
    if ([...prefixConcs, ...concs].includes(null)) throw new Error("compare needs a finite --concurrency");
    const interrupt = interruptSignal();
    let result: CompareResult;
    try {
      const opts: CompareOptions = {
        serveArgs: [...engineArgs, ...serveArgs],
        schedulers: o.skipSchedulers ? [] : (o.schedulers as Scheduler[]),
        concurrency: concs as number[],
        numPrompts: o.numPrompts as number,
        inputLen: o.inputLen as number,
        outputLen: o.outputLen as number,
        prefix: o.skipPrefix
          ? null
          : {
              concurrency: prefixConcs as number[],
              numGroups: o.numGroups as number,
              groupSize: o.groupSize as number,
              prefixLen: o.prefixLen as number,
              suffixLen: o.suffixLen as number,
              outputLen: o.prefixOutputLen as number,
            },
        seed: o.seed as number,
        slo: (o.slo as Slo | undefined) ?? {},
        warmup: o.warmup as number,
        requestTimeoutMs: (o.requestTimeout as number) * 1000,
        runTimeoutMs: (o.timeout as number) * 1000,
        startTimeoutMs: (o.startTimeout as number) * 1000,
        progress: o.progress !== false,
        signal: interrupt.signal,
        log: (l) => console.error(l),
      };
      result = await runCompare(opts);
    } finally {
      interrupt.dispose();
    }
    finish("compare", result.runs, result.ratios, o);
    if (result.errors.length) {
      console.error(`not measured:\n  ${result.errors.join("\n  ")}`);
      process.exitCode = 1;
    }
    const below = result.ratios.filter((r) => r.target !== undefined && !(r.value !== null && r.value >= r.target));
    if (o.check && below.length) {
      console.error(`below target: ${below.map((r) => r.name).join(", ")}`);
      process.exitCode = 1;
    }
  });
}

export function registerBench(program: Command): void {
  const bench = program
    .command("bench")
    .description("serving benchmarks: `bench serve` (any OpenAI server), `bench compare` (Loom vs its baselines)");
  registerServeBench(bench);
  registerCompare(bench);
}
