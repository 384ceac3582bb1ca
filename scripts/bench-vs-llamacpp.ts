/**
 * Loom vs llama.cpp on the same GGUF weights, on this machine, in one run.
 *
 *   npm run bench:vs-llamacpp -- [--json out.json] [--quick] [--threads N] [--models tiny,smol]
 *                                 [--types f16,bf16,q8_0] [--rounds N] [--no-cross-check] [--no-bench]
 *
 * The peer engine is node-llama-cpp 3.21.1 (llama.cpp with prebuilt CPU binaries shipped inside its npm
 * packages), installed on first use into bench-peers/llamacpp (git-ignored, never a project dependency):
 *   npm i -E node-llama-cpp@3.21.1 --prefix bench-peers/llamacpp
 *
 * Models: models/tiny-llama, and a random-weight model of the SmolLM2-360M shape (hidden 960, 32 layers,
 * 15 heads / 5 KV heads, intermediate 2560, vocab 49152, tied embeddings; tiny-llama's tokenizer padded with
 * [PADn] tokens) written as a bf16 safetensors folder into a temp dir. Each is converted by `loom convert`'s
 * code to GGUF F16, BF16 and Q8_0, and both engines load those very files.
 *
 * Per (model, type), each engine in its own child process:
 *   pp512  prompt processing: one 512-token prompt, tokens/s (median of reps)
 *   tg128  decode at batch 1: 128 greedy tokens after a 16-token prompt, tokens/s
 *   par16  aggregate decode: 16 sequences decoding together (llama.cpp: 16 sequences of one context),
 *          64 steps each (16 with --quick) after 16-token prompts, total tokens/s
 * Loom uses the native CPU backend (src/backends/select.ts "auto"; the reference backend and a warning if
 * the addon does not load) with --threads (default: all cores), weights in the file's own format (F16 → f16,
 * BF16 → bf16, Q8_0 → int8), f32 KV cache. llama.cpp runs with 1 thread and with all cores; the better
 * figure of the two is kept per metric (its default f16 KV cache, no flash attention, batch size 512).
 * The engines alternate in --rounds rounds (default 2: loom, llama.cpp, loom, llama.cpp), so that a slow
 * spell of a shared machine lands on both; the table shows each engine's median over the rounds and the
 * median of the per-round ratios.
 *
 * Cross-check: on the F32 GGUF of tiny-llama, loom and llama.cpp decode greedily (32 tokens, through EOG
 * tokens) from every prompt of test/fixtures/refs/tiny-llama.json; the table shows how many tokens each
 * matches of the transformers reference and of each other, and the reference's top-1/top-2 logit gap where
 * they part. A second file with Q4_K/Q6_K down projections (the rest Q8_0) checks our K-quant decoding
 * against llama.cpp's.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { StepMeta } from "../src/backends/backend.ts";
import { selectBackend } from "../src/backends/select.ts";
import { percentile } from "../src/bench/metrics.ts";
import { type ExportType, prepareGguf } from "../src/formats/gguf/export.ts";
import { GgmlType } from "../src/formats/gguf/types.ts";
import { loadModel } from "../src/models/model.ts";
import { makeSmolModel } from "./smol-model.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const PEER_DIR = join(ROOT, "bench-peers/llamacpp");
const PEER_VERSION = "3.21.1";
const PEER_ENTRY = join(PEER_DIR, "node_modules/node-llama-cpp/dist/index.js");
const TINY = join(ROOT, "models/tiny-llama");

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

interface Sizes {
  ppTokens: number;
  ppReps: number;
  tgTokens: number;
  parSeqs: number;
  parSteps: number;
  promptLen: number;
}

// ------------------------------------------------------------------------------------------------
// Child processes: one engine, one file, one job; the result is the last stdout line (JSON).

interface ChildJob {
  engine: "loom" | "llamacpp";
  job: "bench" | "greedy";
  path: string;
  threads: number;
  sizes?: Sizes;
  prompts?: number[][];
  greedyTokens?: number;
}

interface BenchResult {
  pp: number;
  tg: number;
  par: number;
  note?: string;
}

const median = (xs: number[]) => percentile(xs, 50);

/** Deterministic token ids in [3, limit) (skipping tiny-llama's three control tokens). */
function promptIds(n: number, seed: number, limit = 4096): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return 3 + ((s >>> 0) % (limit - 3));
  });
}

/** Step metadata for `seqs` sequences; sequence s owns blocks [s·perSeq, (s+1)·perSeq). */
function makeStep(chunks: number[][], cached: number[], blockSize: number, perSeq: number): StepMeta {
  const numSeqs = chunks.length;
  const T = chunks.reduce((a, c) => a + c.length, 0);
  const tokenIds = new Int32Array(T);
  const positions = new Int32Array(T);
  const slotMapping = new Int32Array(T);
  const queryStart = new Int32Array(numSeqs + 1);
  const seqLens = new Int32Array(numSeqs);
  const blockTables = new Int32Array(numSeqs * perSeq);
  let i = 0;
  chunks.forEach((c, s) => {
    queryStart[s] = i;
    for (let b = 0; b < perSeq; b++) blockTables[s * perSeq + b] = s * perSeq + b;
    c.forEach((tok, j) => {
      const pos = cached[s] + j;
      tokenIds[i] = tok;
      positions[i] = pos;
      slotMapping[i] = (s * perSeq + Math.floor(pos / blockSize)) * blockSize + (pos % blockSize);
      i++;
    });
    seqLens[s] = cached[s] + c.length;
  });
  queryStart[numSeqs] = T;
  return {
    numTokens: T,
    tokenIds,
    positions,
    slotMapping,
    numSeqs,
    queryStart,
    seqLens,
    blockTables,
    maxBlocksPerSeq: perSeq,
  };
}

function argmaxRows(logits: Float32Array, rows: number, V: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[r * V + i] > logits[r * V + best]) best = i;
    out.push(best);
  }
  return out;
}

/** BENCH_DEBUG=1: phase timings of a child on stderr. */
const debug = (msg: string) => {
  if (process.env.BENCH_DEBUG) console.error(`[${(performance.now() / 1000).toFixed(1)} s] ${msg}`);
};

async function loomChild(job: ChildJob): Promise<unknown> {
  const { backend, warning } = await selectBackend("auto", job.threads);
  debug(`loom on ${backend.describe()}`);
  const blockSize = 16;
  if (job.job === "greedy") {
    const prompts = job.prompts ?? [];
    const n = job.greedyTokens ?? 32;
    const longest = Math.max(...prompts.map((p) => p.length)) + n;
    const perSeq = Math.ceil(longest / blockSize) + 1;
    const model = loadModel(job.path, backend, {
      maxTokens: longest,
      numBlocks: perSeq,
      blockSize,
      storage: "f32",
      log: () => {},
    });
    const V = model.config.vocabSize;
    const outputs = prompts.map((p) => {
      let logits = model.graph.forward(makeStep([p], [0], blockSize, perSeq), Int32Array.of(p.length - 1));
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const next = argmaxRows(logits, 1, V)[0];
        out.push(next);
        logits = model.graph.forward(makeStep([[next]], [p.length + i], blockSize, perSeq), Int32Array.of(0));
      }
      return out;
    });
    return { outputs, backend: backend.describe(), warning };
  }
  const z = job.sizes as Sizes;
  const maxLen = Math.max(z.ppTokens, z.promptLen + z.tgTokens, z.promptLen + z.parSteps) + 1;
  const perSeq = Math.ceil(maxLen / blockSize);
  const model = loadModel(job.path, backend, {
    maxTokens: Math.max(z.ppTokens, z.parSeqs * z.promptLen),
    numBlocks: perSeq * z.parSeqs,
    blockSize,
    log: () => {},
  });
  const V = model.config.vocabSize;
  const g = model.graph;
  debug("loaded");
  // pp: one prompt of ppTokens, logits of its last row.
  const pp = promptIds(z.ppTokens, 1);
  const ppStep = makeStep([pp], [0], blockSize, perSeq);
  g.forward(ppStep, Int32Array.of(z.ppTokens - 1)); // warm-up
  debug("pp warm-up done");
  const ppTimes: number[] = [];
  for (let r = 0; r < z.ppReps; r++) {
    const t0 = performance.now();
    g.forward(ppStep, Int32Array.of(z.ppTokens - 1));
    ppTimes.push((performance.now() - t0) / 1000);
  }
  debug("pp done");
  // tg: prefill promptLen − 1 tokens, then tgTokens decode steps starting from the last prompt token.
  const p = promptIds(z.promptLen, 2);
  g.forward(makeStep([p.slice(0, -1)], [0], blockSize, perSeq), Int32Array.of(z.promptLen - 2));
  let tok = p[p.length - 1];
  let t0 = performance.now();
  for (let i = 0; i < z.tgTokens; i++) {
    const logits = g.forward(makeStep([[tok]], [z.promptLen - 1 + i], blockSize, perSeq), Int32Array.of(0));
    tok = argmaxRows(logits, 1, V)[0];
  }
  const tgTime = (performance.now() - t0) / 1000;
  debug("tg done");
  // par: parSeqs prompts prefilled together, then parSteps steps of one token per sequence.
  const prompts = Array.from({ length: z.parSeqs }, (_, s) => promptIds(z.promptLen, 10 + s));
  const S = z.parSeqs;
  g.forward(
    makeStep(
      prompts.map((q) => q.slice(0, -1)),
      new Array(S).fill(0),
      blockSize,
      perSeq,
    ),
    Int32Array.of(z.promptLen - 2),
  );
  let toks = prompts.map((q) => q[q.length - 1]);
  const lastRows = Int32Array.from({ length: S }, (_, s) => s);
  t0 = performance.now();
  for (let i = 0; i < z.parSteps; i++) {
    const logits = g.forward(
      makeStep(
        toks.map((t) => [t]),
        new Array(S).fill(z.promptLen - 1 + i),
        blockSize,
        perSeq,
      ),
      lastRows,
    );
    toks = argmaxRows(logits, S, V);
  }
  const parTime = (performance.now() - t0) / 1000;
  const result: BenchResult = {
    pp: z.ppTokens / median(ppTimes),
    tg: z.tgTokens / tgTime,
    par: (S * z.parSteps) / parTime,
    note: `${backend.describe()}${warning ? ` (${warning})` : ""}`,
  };
  backend.dispose();
  return result;
}

// biome-ignore lint/suspicious/noExplicitAny: node-llama-cpp is loaded from its own folder, untyped here.
type Any = any;

async function llamaChild(job: ChildJob): Promise<unknown> {
  const nlc: Any = await import(PEER_ENTRY);
  const llama: Any = await nlc.getLlama({
    gpu: false,
    build: "never",
    logLevel: nlc.LlamaLogLevel.error,
    maxThreads: 0,
  });
  const model: Any = await llama.loadModel({ modelPath: job.path, gpuLayers: 0 });
  if (job.job === "greedy") {
    const prompts = job.prompts ?? [];
    const n = job.greedyTokens ?? 32;
    const ctx: Any = await model.createContext({ contextSize: 512, threads: job.threads, sequences: 1 });
    const seq: Any = ctx.getSequence();
    const greedy = { generateNext: { token: true, options: { temperature: 0 } } };
    const outputs: number[][] = [];
    for (const p of prompts) {
      await seq.clearHistory();
      const res: Any[] = await seq.controlledEvaluate([...p.slice(0, -1), [p[p.length - 1], greedy]]);
      let next: number = res[p.length - 1].next.token;
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        out.push(next);
        const r: Any[] = await seq.controlledEvaluate([[next, greedy]]);
        next = r[0].next.token;
      }
      outputs.push(out);
    }
    return { outputs };
  }
  const z = job.sizes as Sizes;
  // pp
  let ctx: Any = await model.createContext({
    contextSize: z.ppTokens + 64,
    batchSize: z.ppTokens,
    threads: job.threads,
    sequences: 1,
  });
  let seq: Any = ctx.getSequence();
  const pp = promptIds(z.ppTokens, 1);
  await seq.evaluateWithoutGeneratingNewTokens(pp); // warm-up
  const ppTimes: number[] = [];
  for (let r = 0; r < z.ppReps; r++) {
    await seq.clearHistory();
    const t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(pp);
    ppTimes.push((performance.now() - t0) / 1000);
  }
  // tg
  await seq.clearHistory();
  const p = promptIds(z.promptLen, 2);
  await seq.evaluateWithoutGeneratingNewTokens(p.slice(0, -1));
  let n = 0;
  let t0 = performance.now();
  for await (const _ of seq.evaluate([p[p.length - 1]], { temperature: 0, yieldEogToken: true })) {
    if (++n >= z.tgTokens) break;
  }
  const tgTime = (performance.now() - t0) / 1000;
  const tg = n / tgTime;
  await ctx.dispose();
  // par: one context, parSeqs sequences decoding together (node-llama-cpp batches them into one decode).
  const perSeq = z.promptLen + z.parSteps + 16;
  ctx = await model.createContext({
    contextSize: perSeq * z.parSeqs,
    batchSize: 512,
    threads: job.threads,
    sequences: z.parSeqs,
  });
  const seqs: Any[] = Array.from({ length: z.parSeqs }, () => ctx.getSequence());
  const prompts = seqs.map((_, s) => promptIds(z.promptLen, 10 + s));
  await Promise.all(seqs.map((s, i) => s.evaluateWithoutGeneratingNewTokens(prompts[i].slice(0, -1))));
  let total = 0;
  t0 = performance.now();
  await Promise.all(
    seqs.map(async (s, i) => {
      let k = 0;
      for await (const _ of s.evaluate([prompts[i][z.promptLen - 1]], { temperature: 0, yieldEogToken: true })) {
        total++;
        if (++k >= z.parSteps) break;
      }
    }),
  );
  const parTime = (performance.now() - t0) / 1000;
  seq = null;
  await ctx.dispose();
  const result: BenchResult = { pp: z.ppTokens / median(ppTimes), tg, par: total / parTime };
  return result;
}

/** Runs a child; a failure or a child past `timeoutMin` minutes is reported and gives null. */
function runChild(job: ChildJob, timeoutMin = 20): Any {
  const r = spawnSync(process.execPath, ["--import", "tsx", SELF, "--child", JSON.stringify(job)], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 << 20,
    timeout: timeoutMin * 60 * 1000,
    killSignal: "SIGKILL",
  });
  const last = (r.stdout ?? "").trim().split("\n").at(-1) ?? "";
  if (r.status !== 0 || !last.startsWith("{")) {
    const why = r.error ? r.error.message : `exit ${r.status ?? r.signal}`;
    console.error(`bench-vs-llamacpp: ${job.engine} ${job.job} on ${job.path} failed (${why}); reported as n/a`);
    return null;
  }
  return JSON.parse(last);
}

// ------------------------------------------------------------------------------------------------
// Parent: install the peer, make the models, run everything, print the tables.

function ensurePeer(): void {
  const pkg = join(PEER_DIR, "node_modules/node-llama-cpp/package.json");
  if (existsSync(pkg) && JSON.parse(readFileSync(pkg, "utf8")).version === PEER_VERSION) return;
  mkdirSync(PEER_DIR, { recursive: true });
  // The folder never belongs in git, whatever the top-level .gitignore says.
  writeFileSync(join(ROOT, "bench-peers/.gitignore"), "*\n");
  console.error(`installing node-llama-cpp@${PEER_VERSION} into bench-peers/llamacpp (prebuilt llama.cpp binaries)…`);
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const r = spawnSync(
    npm,
    ["i", "-E", `node-llama-cpp@${PEER_VERSION}`, "--prefix", PEER_DIR, "--no-audit", "--no-fund"],
    {
      cwd: ROOT,
      stdio: "inherit",
    },
  );
  if (r.status !== 0 || !existsSync(PEER_ENTRY))
    throw new Error(`npm install of node-llama-cpp@${PEER_VERSION} failed`);
}

async function convert(
  modelDir: string,
  type: ExportType,
  path: string,
  typeFor?: (n: string, s: readonly number[], t: number) => number,
): Promise<string> {
  const { writer, close } = await prepareGguf(modelDir, type, () => {}, typeFor);
  try {
    writer.write(path);
  } finally {
    close();
  }
  return path;
}

const fmt = (x: number) => (Number.isNaN(x) ? "n/a" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

async function crossCheck(tmp: string, threads: number): Promise<unknown> {
  const refs = JSON.parse(readFileSync(join(ROOT, "test/fixtures/refs/tiny-llama.json"), "utf8")) as {
    cases: { name: string; prompt_ids: number[]; greedy_ids: number[]; greedy_top1_top2_gap: number[] }[];
  };
  const prompts = refs.cases.map((c) => c.prompt_ids);
  const n = 32;
  const f32 = await convert(TINY, "f32", join(tmp, "tiny-llama-f32.gguf"));
  // Down projections (rows of 1024 = four 256-blocks) alternate Q4_K/Q6_K; everything else Q8_0.
  const kmix = await convert(TINY, "q8_0", join(tmp, "tiny-llama-kmix.gguf"), (name, shape, t) => {
    const m = /layers\.(\d+)\.mlp\.down_proj/.exec(name);
    return m && shape[1] % 256 === 0 ? (Number(m[1]) % 2 ? GgmlType.Q6_K : GgmlType.Q4_K) : t;
  });
  const prefix = (a: number[], b: number[]) => {
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return i;
  };
  const report: Any[] = [];
  for (const [label, path] of [
    ["F32", f32],
    ["Q8_0 + Q4_K/Q6_K", kmix],
  ] as const) {
    const loom = runChild({ engine: "loom", job: "greedy", path, threads, prompts, greedyTokens: n });
    const lcpp = runChild({ engine: "llamacpp", job: "greedy", path, threads, prompts, greedyTokens: n });
    if (!loom || !lcpp) continue;
    console.log(`\ncross-check on tiny-llama GGUF ${label} (${n} greedy tokens per prompt; loom on ${loom.backend})`);
    console.log("case          loom=refs  llama.cpp=refs  loom=llama.cpp  refs gap where loom and llama.cpp part");
    let agree = 0;
    let total = 0;
    refs.cases.forEach((c, i) => {
      const a = loom.outputs[i] as number[];
      const b = lcpp.outputs[i] as number[];
      const ref = c.greedy_ids.slice(0, n);
      const ab = prefix(a, b);
      agree += ab;
      total += n;
      const gapAt = ab < n ? (c.greedy_top1_top2_gap[ab] ?? Number.NaN) : Number.NaN;
      const gapNote =
        ab >= n
          ? "-"
          : ab <= prefix(a, ref) && ab < ref.length
            ? `${gapAt.toFixed(3)} at token ${ab}`
            : `after refs end/diverge (token ${ab})`;
      console.log(
        `${c.name.padEnd(13)} ${`${prefix(a, ref)}/${ref.length}`.padStart(9)}  ${`${prefix(b, ref)}/${ref.length}`.padStart(14)}  ${`${ab}/${n}`.padStart(14)}  ${gapNote}`,
      );
      report.push({
        file: label,
        case: c.name,
        loomVsRefs: prefix(a, ref),
        llamaVsRefs: prefix(b, ref),
        loomVsLlama: ab,
        refLen: ref.length,
        loom: a,
        llamacpp: b,
      });
    });
    console.log(`agreement loom vs llama.cpp: ${agree}/${total} tokens (common prefixes)`);
  }
  return report;
}

async function main(): Promise<void> {
  if (flag("--child")) {
    const job = JSON.parse(opt("--child") as string) as ChildJob;
    const out = job.engine === "loom" ? await loomChild(job) : await llamaChild(job);
    process.stdout.write(`\n${JSON.stringify(out)}\n`);
    process.exit(0);
  }
  const quick = flag("--quick");
  // alternating rounds of both engines per (model, type)
  const rounds = Math.max(1, Number(opt("--rounds") ?? (quick ? 1 : 2)));
  const threads = Number(opt("--threads") ?? availableParallelism());
  const models = (opt("--models") ?? "tiny,smol").split(",");
  const types = (opt("--types") ?? "f16,bf16,q8_0").split(",") as ExportType[];
  const sizes: Sizes = quick
    ? { ppTokens: 512, ppReps: 1, tgTokens: 32, parSeqs: 16, parSteps: 16, promptLen: 16 }
    : { ppTokens: 512, ppReps: 3, tgTokens: 128, parSeqs: 16, parSteps: 64, promptLen: 16 };
  ensurePeer();
  const info = JSON.parse(
    readFileSync(join(PEER_DIR, "node_modules/node-llama-cpp/llama/llama.cpp.info.json"), "utf8"),
  );
  const tmp = mkdtempSync(join(tmpdir(), "loom-vs-llamacpp-"));
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  console.log(
    `machine: ${cpu}, ${availableParallelism()} threads; loom threads ${threads}; llama.cpp: node-llama-cpp ${PEER_VERSION} (llama.cpp ${info.tag}), 1 and ${availableParallelism()} threads, best kept`,
  );
  const result: Any = {
    machine: { cpu, threads: availableParallelism() },
    loomThreads: threads,
    peer: { nodeLlamaCpp: PEER_VERSION, llamaCpp: info.tag },
    sizes,
    rows: [],
  };
  try {
    if (!flag("--no-cross-check")) result.crossCheck = await crossCheck(tmp, threads);
    if (!flag("--no-bench")) {
      const dirs: [string, string][] = [];
      if (models.includes("tiny")) dirs.push(["tiny-llama", TINY]);
      if (models.includes("smol")) {
        console.error("writing the random-weight SmolLM2-360M-shaped model…");
        dirs.push(["smol-360m (random)", makeSmolModel(tmp)]);
      }
      const threadSet = [...new Set([1, availableParallelism()])];
      console.log(
        `\npp${sizes.ppTokens} / tg${sizes.tgTokens} / par${sizes.parSeqs}×${sizes.parSteps}: tokens per second`,
      );
      console.log(
        `model               type  metric      loom   llama.cpp (threads)   loom ÷ llama.cpp   per round (${rounds})`,
      );
      for (const [name, dir] of dirs) {
        for (const type of types) {
          const path = await convert(dir, type, join(tmp, `${name.split(" ")[0]}-${type}.gguf`));
          const nan: BenchResult = { pp: Number.NaN, tg: Number.NaN, par: Number.NaN };
          const results = Array.from({ length: rounds }, () => {
            const loom: BenchResult = runChild({ engine: "loom", job: "bench", path, threads, sizes }) ?? nan;
            const peers = threadSet.map((t) => ({
              t,
              r: (runChild({ engine: "llamacpp", job: "bench", path, threads: t, sizes }) ?? nan) as BenchResult,
            }));
            return { loom, peers };
          });
          for (const [metric, label] of [
            ["pp", `pp${sizes.ppTokens}`],
            ["tg", `tg${sizes.tgTokens}`],
            ["par", `par${sizes.parSeqs}`],
          ] as const) {
            // per round: llama.cpp's better thread count, and loom ÷ that
            const per = results.map(({ loom, peers }) => {
              const best = peers.reduce((a, b) => (b.r[metric] > a.r[metric] || Number.isNaN(a.r[metric]) ? b : a));
              return { loom: loom[metric], peer: best.r[metric], t: best.t, ratio: loom[metric] / best.r[metric] };
            });
            const loomMed = median(per.map((p) => p.loom));
            const peerMed = median(per.map((p) => p.peer));
            const ratio = median(per.map((p) => p.ratio));
            const threadsUsed = [...new Set(per.map((p) => p.t))].join("/");
            console.log(
              `${name.padEnd(19)} ${type.padEnd(5)} ${label.padEnd(8)} ${fmt(loomMed).padStart(7)}   ${fmt(peerMed).padStart(9)} (${threadsUsed})   ${ratio.toFixed(2).padStart(8)}   ${per.map((p) => p.ratio.toFixed(2)).join(" ")}`,
            );
            result.rows.push({
              model: name,
              type,
              metric: label,
              loom: loomMed,
              llamacpp: peerMed,
              llamacppThreads: threadsUsed,
              ratio,
              rounds: per,
            });
          }
          result.loomBackend = results[0].loom.note ?? result.loomBackend;
          // Written after every (model, type) so that a long run leaves its table behind.
          if (opt("--json")) writeFileSync(opt("--json") as string, JSON.stringify(result, null, 2));
          rmSync(path, { force: true });
        }
      }
      console.log(`loom backend: ${result.loomBackend}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const json = opt("--json");
  if (json) {
    writeFileSync(json, JSON.stringify(result, null, 2));
    console.log(`wrote ${json}`);
  }
}

main().catch((e) => {
  console.error(`bench-vs-llamacpp: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
