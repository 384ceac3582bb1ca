/**
 * Speculative decoding benchmark: drives EngineCore in-process (no server) and compares each speculative
 * configuration with the plain engine measured in the same run, interleaved run by run (so machine noise
 * hits both alike), reporting medians.
 *
 *   node --import tsx scripts/bench-spec.ts [--json FILE] [--backend auto|cpu|reference] [--runs N]
 *                                            [--max-tokens N] [--k 2,3,4] [--threads N] [--batch-sweep] [--quick]
 *
 * Scenarios (greedy, so both sides emit the same tokens):
 *   recite    batch 1: chat "Recite <Book> <c>:<v>." and plain Bible continuations (ignore_eos, max tokens
 *             each); tiny-llama + its draft
 *   quote     batch 1: chat prompts that ask the model to repeat a verse they quote, the answer's first
 *             words given; ends at EOS; n-gram lookup (and the one verse tiny-llama repeats verbatim)
 *   16 seqs   16 concurrent recitation requests: aggregate throughput, plain vs draft (auto-off at the
 *             default batch size, and forced on) vs n-gram; with --batch-sweep also 2, 4 and 8
 * Columns: output tokens/s, speedup over plain in wall time and in process CPU time (on a machine other
 * jobs load, run with --threads 1 and read the CPU-time column), target forward passes (steps) per run,
 * acceptance rate,
 * tokens emitted per verification (1 + accepted / verifications).
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { percentile } from "../src/bench/metrics.ts";
import { buildCore } from "../src/engine/build-core.ts";
import type { EngineCore } from "../src/engine/engine-core.ts";
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions } from "../src/engine/options.ts";
import type { EngineStats } from "../src/engine/types.ts";
import { normalizeSamplingParams } from "../src/sampler/params.ts";
import { DEFAULT_SPEC_DISABLE_BY_BATCH_SIZE } from "../src/spec/config.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";

const root = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));
const MODEL = root("models/tiny-llama");
const DRAFT = root("models/tiny-llama-draft");

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const QUICK = process.argv.includes("--quick");
const JSON_OUT = arg("--json");
const BACKEND = (arg("--backend") ?? "auto") as EngineOptions["backend"];
const RUNS = Number(arg("--runs") ?? (QUICK ? 3 : 5));
const MAX_TOKENS = Number(arg("--max-tokens") ?? (BACKEND === "reference" ? 16 : 64));
const K_SWEEP = (arg("--k") ?? "2,3,4").split(",").map(Number);
const THREADS = arg("--threads") === undefined ? undefined : Number(arg("--threads"));
/** Also measure 2, 4 and 8 concurrent sequences with speculation forced on (where does it stop paying?). */
const BATCH_SWEEP = process.argv.includes("--batch-sweep");

const tok = await Tokenizer.load(MODEL);
const chat = (user: string) => tok.applyChatTemplate([{ role: "user", content: user }], { addGenerationPrompt: true });

const RECITE: string[] = [
  chat("Recite Genesis 1:1."),
  chat("Recite Psalms 23:1."),
  chat("Recite John 3:16."),
  chat("Recite Exodus 20:3."),
  "In the beginning God created",
  "Psalms 23\n1 The LORD is my shepherd; I shall not want.\n2",
  "And the LORD said unto Moses,",
  "Matthew 5\n3 Blessed are the poor in spirit: for theirs is the kingdom of heaven.\n4",
];

/** Asks for a verbatim repeat of a verse the prompt quotes; the answer's first words are given. */
function quote(text: string, words = 3): string {
  return `${chat(`Repeat after me: ${text}`)}${text.split(" ").slice(0, words).join(" ")}`;
}
const QUOTE: string[] = [
  quote(
    "For God so loved the world, that he gave his only begotten Son, that whosoever believeth in him should not perish, but have everlasting life.",
  ),
  quote("In the beginning God created the heaven and the earth."),
  quote("The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures."),
  quote("In the beginning was the Word, and the Word was with God, and the Word was God."),
  quote("And God said, Let there be light: and there was light."),
  quote("Thou shalt have no other gods before me."),
];

interface Config {
  name: string;
  opts: Partial<EngineOptions>;
}

interface Measure {
  seconds: number;
  /** Process CPU time (user + system): with --threads 1 the work done, whatever else loads the machine. */
  cpuSeconds: number;
  tokens: number;
  proposed: number;
  accepted: number;
  specSteps: number;
  steps: number;
}

/** Runs the prompts (`concurrent` at a time) to completion; returns wall time and the spec counters' deltas. */
function runOnce(core: EngineCore, prompts: number[][], concurrent: number, tag: string, ignoreEos: boolean): Measure {
  const s0 = core.stats();
  let tokens = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let start = 0; start < prompts.length; start += concurrent) {
    prompts.slice(start, start + concurrent).forEach((ids, i) => {
      core.addRequest({
        id: `${tag}-${start + i}`,
        promptTokenIds: ids,
        params: normalizeSamplingParams(
          { temperature: 0, maxTokens: MAX_TOKENS, ignoreEos },
          { vocabSize: 4096, defaultMaxTokens: MAX_TOKENS },
        ),
      });
    });
    while (core.hasWork()) for (const d of core.step()) tokens += d.tokenIds.length;
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const s1 = core.stats();
  const d = (k: keyof EngineStats) => ((s1[k] as number | undefined) ?? 0) - ((s0[k] as number | undefined) ?? 0);
  return {
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    tokens,
    proposed: d("specProposedTokens"),
    accepted: d("specAcceptedTokens"),
    specSteps: d("specSteps"),
    steps: d("steps"),
  };
}

const median = (xs: number[]) => percentile(xs, 50);

interface Row {
  scenario: string;
  config: string;
  runs: number;
  tokens: number;
  medianSeconds: number;
  /** Engine steps (forward passes of the target) per run. */
  steps: number;
  tokensPerSecond: number;
  speedup: number | null;
  medianCpuSeconds: number;
  /** Speedup in process CPU time (the robust one on a loaded machine with --threads 1). */
  cpuSpeedup: number | null;
  acceptanceRate: number | null;
  /** Tokens emitted per verification (1 + accepted / verifications). */
  meanTokensPerVerification: number | null;
  secondsPerRun: number[];
}

let backendName = "";
/** Measures every config on one scenario, interleaved; the first config is the baseline. */
async function scenario(
  name: string,
  texts: string[],
  concurrent: number,
  configs: Config[],
  ignoreEos = true,
): Promise<Row[]> {
  const prompts = texts.map((t) => tok.encode(t));
  const cores: EngineCore[] = [];
  for (const c of configs) {
    const built = await buildCore({
      ...DEFAULT_ENGINE_OPTIONS,
      model: MODEL,
      backend: BACKEND,
      threads: THREADS,
      kvCacheMemory: 64 * 1024 * 1024,
      ...c.opts,
    });
    if (built.warning && !backendName) console.error(built.warning);
    backendName = built.info.backend;
    cores.push(built.core);
  }
  // Warm-up: one run each (also fills the prefix cache, so every measured run sees the same cache).
  for (let i = 0; i < configs.length; i++) runOnce(cores[i], prompts, concurrent, `${name}-${i}-w`, ignoreEos);
  const all: Measure[][] = configs.map(() => []);
  for (let r = 0; r < RUNS; r++) {
    for (let i = 0; i < configs.length; i++) {
      all[i].push(runOnce(cores[i], prompts, concurrent, `${name}-${i}-${r}`, ignoreEos));
    }
  }
  const base = median(all[0].map((m) => m.seconds));
  const baseCpu = median(all[0].map((m) => m.cpuSeconds));
  return configs.map((c, i) => {
    const ms = all[i];
    const secs = median(ms.map((m) => m.seconds));
    const cpu = median(ms.map((m) => m.cpuSeconds));
    const tokens = ms[0].tokens;
    const proposed = ms.reduce((s, m) => s + m.proposed, 0);
    const accepted = ms.reduce((s, m) => s + m.accepted, 0);
    const verifications = ms.reduce((s, m) => s + m.specSteps, 0);
    return {
      scenario: name,
      config: c.name,
      runs: RUNS,
      tokens,
      medianSeconds: secs,
      steps: ms[0].steps,
      tokensPerSecond: tokens / secs,
      speedup: i === 0 ? null : base / secs,
      medianCpuSeconds: cpu,
      cpuSpeedup: i === 0 ? null : baseCpu / cpu,
      acceptanceRate: proposed > 0 ? accepted / proposed : null,
      meanTokensPerVerification: verifications > 0 ? 1 + accepted / verifications : null,
      secondsPerRun: ms.map((m) => m.seconds),
    };
  });
}

const plain: Config = { name: "plain", opts: {} };
const draft = (k: number, disable?: number): Config => ({
  name: `draft k=${k}${disable === 0 ? ", always on" : ""}`,
  opts: { speculativeModel: DRAFT, numSpeculativeTokens: k, speculativeDisableByBatchSize: disable },
});
const ngram = (k: number, disable?: number): Config => ({
  name: `ngram k=${k}${disable === 0 ? ", always on" : ""}`,
  opts: { speculativeMethod: "ngram", numSpeculativeTokens: k, speculativeDisableByBatchSize: disable },
});

const rows: Row[] = [];
const t0 = performance.now();
rows.push(...(await scenario("recite, batch 1", RECITE, 1, [plain, ...K_SWEEP.map((k) => draft(k))])));
// The repeat ends with EOS: the answer is the quote (ignore_eos would run on into unrelated text).
rows.push(...(await scenario("quote, batch 1", QUOTE, 1, [plain, ...K_SWEEP.map((k) => ngram(k))], false)));
// The one quote tiny-llama reproduces verbatim (it knows John 3:16 by heart): n-gram lookup at its best.
rows.push(...(await scenario("quote John 3:16", QUOTE.slice(0, 1), 1, [plain, ngram(4), ngram(7), ngram(8)], false)));
const K = 4; // the default --num-speculative-tokens
if (BATCH_SWEEP) {
  for (const c of [2, 4, 8]) {
    const texts = Array.from({ length: c }, (_, i) => RECITE[i % RECITE.length]);
    rows.push(...(await scenario(`${c} concurrent`, texts, c, [plain, draft(2, 0), draft(K, 0)])));
  }
}
rows.push(
  ...(await scenario("16 concurrent", [...RECITE, ...RECITE], 16, [plain, draft(K), draft(K, 0), ngram(K, 0)])),
);

const pct = (x: number | null) => (x === null ? "-" : `${(100 * x).toFixed(0)}%`);
const fix = (x: number | null, d = 2) => (x === null ? "-" : x.toFixed(d));
console.log(
  `\nspeculative decoding, tiny-llama (+ tiny-llama-draft), ${backendName}; ${MAX_TOKENS} tokens per request, ` +
    `median of ${RUNS} interleaved runs (auto-off above ${DEFAULT_SPEC_DISABLE_BY_BATCH_SIZE} seqs by default)\n`,
);
const header = ["scenario", "config", "tok/s", "speedup", "cpu speedup", "steps", "accept", "tok/verify"];
const table = rows.map((r) => [
  r.scenario,
  r.config,
  r.tokensPerSecond.toFixed(1),
  r.speedup === null ? "(baseline)" : `${r.speedup.toFixed(2)}x`,
  r.cpuSpeedup === null ? "(baseline)" : `${r.cpuSpeedup.toFixed(2)}x`,
  String(r.steps),
  pct(r.acceptanceRate),
  fix(r.meanTokensPerVerification),
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
console.log(line(header));
for (const row of table) console.log(line(row));
console.log(`\n(${((performance.now() - t0) / 1000).toFixed(0)} s)`);

if (JSON_OUT) {
  writeFileSync(
    JSON_OUT,
    `${JSON.stringify({ backend: backendName, maxTokens: MAX_TOKENS, runs: RUNS, rows }, null, 2)}\n`,
  );
  console.log(`wrote ${JSON_OUT}`);
}
