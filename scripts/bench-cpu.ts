/**
 * Native CPU backend benchmark.
 *
 *   node --import tsx scripts/bench-cpu.ts [--json out.json] [--threads N] [--isa scalar|avx2|avx512|amx]
 *                                          [--kv bf16|f32|f16|int8] [--quick]
 *   node --import tsx scripts/bench-cpu.ts --profile [tiny-llama|smol360m] [bf16|int8|…] [batch] [steps]
 *       (per-op time breakdown of decode steps)
 *
 * (a) memory bandwidth probe (multi-threaded streaming read of 1 GB) and GEMV 4096×4096 with bf16 and
 *     int8 weights: achieved weight-read bandwidth and its % of the probe (goal ≥ 80%; of the overall
 *     medians, and "rounds" the median of each round's GEMVs against that round's probe). "cold" rotates
 *     through ≥ 1 GB of copies so weights come from DRAM as in a real model; "hot" reuses one matrix
 *     (it may sit in a large L3).
 * (b) decode tokens/s at batch 1, 16 and 64 (one decode token per sequence, each with its own KV blocks
 *     and ~64 tokens of context in a bf16 KV cache unless --kv says otherwise; LlamaGraph.forward, logits
 *     for every sequence) for models/tiny-llama and
 *     a random-weight SmolLM2-360M-shaped model built in memory, with bf16 and int8 weights; the ratio
 *     batch64/batch1 (goal ≥ 8×; of the overall medians, and "(rounds)" the median of each round's ratio)
 *     and batch-1 int8 decode as % of probe bandwidth ÷ weight bytes read per
 *     token (goal 85%; each round's batch-1 steps against a probe taken in that round, median over the
 *     rounds; "(best)" rows: best step against the median probe); "idle prefetch" is
 *     the batch-1 speedup from pool helpers prefetching the next matrix between ops (paired steps, off/on).
 * (c) native vs reference backend on the 360M shape: batch-1 decode steps in interleaved rounds (goal ≥ 20×),
 *     and the throughput ratio at batch 16.
 * (d) peak RSS of a process running the 360M model with int8 weights vs int8 weight bytes + KV pool +
 *     300 MB.
 * (e) decode as served: the engine core with its defaults on tiny-llama, bf16 and int8 weights, 1/16/64
 *     concurrent requests (scripts/served-decode.ts), and the paired gain of greedy argmax on the backend.
 * Every heavy part runs in its own child process (so maxRSS is that part's own). Times are medians; the
 * batch sizes of (b) are timed in interleaved rounds, so that their ratio is measured under the same load.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { Backend, KvDType, StepMeta, StorageDType } from "../src/backends/backend.ts";
import { CpuBackend, type CpuIsa } from "../src/backends/cpu/cpu-backend.ts";
import { ReferenceBackend } from "../src/backends/reference/reference-backend.ts";
import { percentile } from "../src/bench/metrics.ts";
import { hostBf16 } from "../src/formats/dtype.ts";
import type { ModelConfig } from "../src/models/config.ts";
import type { LlamaGraph } from "../src/models/graph.ts";
import type { ModelWeights } from "../src/models/weights.ts";
import { type BenchModel, BLOCK, benchGraph, CTX, decodeMeta } from "./bench-decode.ts";
import { type ServedDecode, servedDecode } from "./served-decode.ts";

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const THREADS = Number(opt("--threads") ?? availableParallelism());
const QUICK = flag("--quick");
const ISA = opt("--isa") as CpuIsa | undefined;
const KV = (opt("--kv") ?? "bf16") as KvDType;
const SELF = fileURLToPath(import.meta.url);

const median = (xs: number[]) => percentile(xs, 50);
const maxRssBytes = () => process.resourceUsage().maxRSS * 1024;

function cpuBackend(): CpuBackend {
  const r = CpuBackend.tryLoad({ threads: THREADS, isa: ISA });
  if ("error" in r) {
    console.error(`bench-cpu: ${r.error}`);
    process.exit(1);
  }
  return r.backend;
}

// ------------------------------------------------------------------------------------------------
// models
// ------------------------------------------------------------------------------------------------

interface Built {
  graph: LlamaGraph;
  cfg: ModelConfig;
  weights: ModelWeights;
}

function build(model: string, backend: Backend, storage: StorageDType, numBlocks: number, maxTokens: number): Built {
  const graph = benchGraph(model as BenchModel, backend, storage, { maxTokens, numBlocks, kvDtype: KV });
  return { graph, cfg: graph.cfg, weights: graph.weights };
}

/** Bytes of weight matrices read by one decode step (every layer matrix + lm_head). */
function bytesPerToken(w: ModelWeights): number {
  const b = (x: unknown) => (x as { bytes?: number }).bytes ?? 0;
  let sum = b(w.lmHead);
  for (const l of w.layers) sum += b(l.qkv) + b(l.o) + b(l.gateUp) + b(l.down);
  return sum;
}

function uniqueWeightBytes(w: ModelWeights): number {
  const seen = new Set<unknown>();
  let sum = 0;
  const add = (x: unknown) => {
    if (!x || seen.has(x)) return;
    seen.add(x);
    sum += (x as { bytes?: number }).bytes ?? 0;
  };
  add(w.embed);
  add(w.lmHead);
  add(w.finalNorm);
  for (const l of w.layers) for (const v of Object.values(l)) add(v);
  return sum;
}

/** Bytes of the graph's KV pools (every layer). */
const kvPoolBytes = (g: Built) => g.graph.kv.reduce((a, l) => a + ((l as unknown as { bytes?: number }).bytes ?? 0), 0);

/** Median and best seconds per decode step at batch n. */
function timeDecode(g: Built, n: number, steps: number, warmup = 2): { median: number; best: number } {
  return timeDecodeRounds(g, { [n]: steps }, 1, Math.ceil((CTX + warmup + steps + 1) / BLOCK), warmup)[n];
}

// ------------------------------------------------------------------------------------------------
// child sections
// ------------------------------------------------------------------------------------------------

function sectionBandwidth() {
  const be = cpuBackend();
  const N = 4096;
  const K = 4096;
  const vals = new Float32Array(N * K);
  for (let i = 0; i < vals.length; i++) vals[i] = Math.sin(i * 0.37) * 0.05;
  const host = hostBf16(vals, [N, K]);
  const x = be.buffer(64 * K);
  be.write(
    x,
    new Float32Array(64 * K).map((_, i) => Math.cos(i)),
  );
  const y = be.buffer(64 * N);
  type W = ReturnType<typeof be.weight>;
  const storages = ["bf16", "int8"] as StorageDType[];
  const sets: Record<string, { bytes: number; ws: W[]; next: number; cold: number[]; ratios: number[] }> = {};
  for (const storage of storages) {
    const first = be.weight(host, storage);
    const bytes = (first as unknown as { bytes: number }).bytes;
    const ws = [first, ...Array.from({ length: Math.ceil(2 ** 30 / bytes) - 1 }, () => be.weight(host, storage))];
    sets[storage] = { bytes, ws, next: 0, cold: [], ratios: [] };
  }
  const time = (rows: number, pick: () => W, reps: number) => {
    for (let i = 0; i < 3; i++) be.matmul(y, x, pick(), null, rows);
    const t: number[] = [];
    for (let i = 0; i < reps; i++) {
      const w = pick();
      const t0 = performance.now();
      be.matmul(y, x, w, null, rows);
      t.push((performance.now() - t0) / 1e3);
    }
    return t;
  };
  // The probe and the cold GEMVs alternate in rounds, so that a slow spell of this shared machine lands
  // on both sides of the ratio instead of on one of them; each round's GEMVs are also set against that
  // round's probe (its bandwidth drifts within seconds), and "% probe (rounds)" is the median of those.
  const rounds = QUICK ? 2 : 7;
  const probe: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const probeR = [...be.probeBandwidth(1 << 30, 2)];
    probe.push(...probeR);
    for (const storage of storages) {
      const s = sets[storage];
      const reps = Math.ceil(((QUICK ? 1 : 3) * s.ws.length) / rounds);
      const t = time(1, () => s.ws[s.next++ % s.ws.length], reps);
      s.cold.push(...t);
      s.ratios.push(s.bytes / median(t) / 1e9 / median(probeR));
    }
  }
  const gemv: Record<string, unknown> = {};
  for (const storage of storages) {
    const s = sets[storage];
    const hot = time(1, () => s.ws[0], QUICK ? 20 : 60);
    const gemm = time(64, () => s.ws[s.next++ % s.ws.length], QUICK ? 4 : 10);
    gemv[storage] = {
      bytes: s.bytes,
      coldGBs: s.bytes / median(s.cold) / 1e9,
      coldBestGBs: s.bytes / Math.min(...s.cold) / 1e9,
      pctOfProbeRounds: median(s.ratios),
      pctOfProbeRoundsMin: Math.min(...s.ratios),
      pctOfProbeRoundsMax: Math.max(...s.ratios),
      hotGBs: s.bytes / median(hot) / 1e9,
      gemm64Gflops: (2 * 64 * N * K) / median(gemm) / 1e9,
    };
  }
  return { isa: be.isa, threads: be.threads, probeGBs: median(probe), probeBestGBs: Math.max(...probe), gemv };
}

/**
 * Seconds per decode step at each batch size, measured in interleaved rounds (batch 1, 16, 64, then again)
 * so that a slow spell of this shared machine lands on every batch size alike instead of skewing their
 * ratio. Every round replays the same positions (their KV writes overwrite), after `warmup` untimed steps
 * per batch size in the first round.
 */
function timeDecodeRounds(
  g: Built,
  steps: Record<number, number>,
  rounds: number,
  bps: number,
  warmup = 1,
  eachRound?: () => void,
): Record<number, { median: number; best: number; roundMedians: number[] }> {
  const batches = Object.keys(steps).map(Number);
  const times: Record<number, number[]> = {};
  const metas: Record<number, StepMeta[]> = {};
  for (const n of batches) {
    times[n] = [];
    metas[n] = Array.from({ length: warmup + steps[n] }, (_, i) => decodeMeta(n, i, bps, g.cfg.vocabSize));
  }
  const roundMedians: Record<number, number[]> = Object.fromEntries(batches.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    eachRound?.();
    for (const n of batches) {
      const rows = Int32Array.from({ length: n }, (_, i) => i);
      const round: number[] = [];
      metas[n].forEach((m, i) => {
        if (i < warmup && r > 0) return;
        const t0 = performance.now();
        g.graph.forward(m, rows);
        if (i >= warmup) round.push((performance.now() - t0) / 1e3);
      });
      times[n].push(...round);
      roundMedians[n].push(median(round));
    }
  }
  return Object.fromEntries(
    batches.map((n) => [n, { median: median(times[n]), best: Math.min(...times[n]), roundMedians: roundMedians[n] }]),
  );
}

function sectionDecode(model: string, storage: StorageDType) {
  const be = cpuBackend();
  // Interleaved rounds: a slow spell of the shared machine (seen lasting ~1 s and moving a step's time
  // 1.5×) then lands on every batch size instead of on one. tiny-llama's rounds take ~0.1 s, so it gets
  // more of them. Steps per round at batch 1, 16, 64; in all: 360M 20/10/10, tiny-llama 98/49/49.
  const rounds = QUICK ? 1 : model === "tiny-llama" ? 7 : 5;
  const per = QUICK ? 3 : model === "tiny-llama" ? 7 : 2;
  const steps: Record<number, number> = { 1: 2 * per, 16: per, 64: per };
  const bps = Math.ceil((CTX + 2 + 2 * per + 1) / BLOCK);
  const t0 = performance.now();
  const g = build(model, be, storage, 64 * bps, 64);
  const loadS = (performance.now() - t0) / 1e3;
  const tokS: Record<number, number> = {};
  const tokSBest: Record<number, number> = {};
  // Batch-1 % of bandwidth: each round's batch-1 steps against a probe taken at the start of that round
  // (this machine's bandwidth drifts within seconds), median over the rounds. The idle-prefetch gain is
  // paired batch-1 steps with it off and on.
  const probe: number[] = [];
  const timed = timeDecodeRounds(g, steps, rounds, bps, 1, () => probe.push(...be.probeBandwidth(1 << 30, 1)));
  const bytes = bytesPerToken(g.weights);
  const b1PctOfProbe = median(timed[1].roundMedians.map((t, r) => bytes / t / (probe[r] * 1e9)));
  // The same pairing for batch 64 over batch 1: each round's ratio, median over the rounds.
  const b64OverB1Rounds = median(timed[64].roundMedians.map((t, r) => (64 * timed[1].roundMedians[r]) / t));
  const rows = Int32Array.of(0);
  const gains: number[] = [];
  for (let i = 0; i < (QUICK ? 2 : 8); i++) {
    const m = decodeMeta(1, i % steps[1], bps, g.cfg.vocabSize);
    const t: number[] = [];
    for (const on of [false, true]) {
      be.setIdlePrefetch(on);
      g.graph.forward(m, rows);
      const t0 = performance.now();
      g.graph.forward(m, rows);
      t.push(performance.now() - t0);
    }
    gains.push(t[0] / t[1]);
  }
  for (const [n, t] of Object.entries(timed)) {
    tokS[Number(n)] = Number(n) / t.median;
    tokSBest[Number(n)] = Number(n) / t.best;
  }
  const kvBytes = kvPoolBytes(g);
  return {
    model,
    storage,
    isa: be.isa,
    threads: be.threads,
    loadS,
    tokS,
    tokSBest,
    probeGBs: median(probe),
    b1PctOfProbe,
    b64OverB1Rounds,
    idlePrefetchGain: median(gains),
    weightBytes: uniqueWeightBytes(g.weights),
    bytesPerToken: bytesPerToken(g.weights),
    kvBytes,
  };
}

/** Peak RSS of a process that loads the 360M shape with int8 weights and decodes at batch 1, 16 and 64
 * (its own process: the decode section's bandwidth probe would add its 1 GB buffer). */
function sectionRss() {
  const be = cpuBackend();
  const steps = QUICK ? 2 : 4;
  const bps = Math.ceil((CTX + 2 + steps + 1) / BLOCK);
  const g = build("smol360m", be, "int8", 64 * bps, 64);
  timeDecodeRounds(g, { 1: steps, 16: steps, 64: steps }, 1, bps);
  return { maxRssBytes: maxRssBytes(), weightBytes: uniqueWeightBytes(g.weights), kvBytes: kvPoolBytes(g) };
}

/**
 * (c) Native against reference on the 360M shape, at batch 1 in interleaved rounds (each round: one reference
 * step, then three steps of each native storage right after it, so that each round's ratio is taken within
 * seconds of this drifting machine; median over the rounds), and at batch 16 (one reference step, ~16 s).
 * "bf16" is what each backend runs a bf16 checkpoint as by default (build-core.ts: bf16 on the native
 * backend, f32 on the reference); "f32" compares the same arithmetic.
 */
function sectionReference() {
  const per = 3;
  const rounds = QUICK ? 1 : 3;
  const batches = QUICK ? [1] : [1, 16];
  const bps = Math.ceil((CTX + per + 2) / BLOCK);
  const be = cpuBackend();
  const storages = ["f32", "bf16", "int8"] as StorageDType[];
  const native = storages.map((s) => build("smol360m", be, s, 16 * bps, 16));
  const ref = build("smol360m", new ReferenceBackend(), "f32", 16 * bps, 16);
  /** Seconds of each of `steps` decode steps at batch n (positions CTX, CTX + 1, …). */
  const steps = (g: Built, n: number, count: number) => {
    const rows = Int32Array.from({ length: n }, (_, i) => i);
    return Array.from({ length: count }, (_, i) => {
      const m = decodeMeta(n, i, bps, g.cfg.vocabSize);
      const t0 = performance.now();
      g.graph.forward(m, rows);
      return (performance.now() - t0) / 1e3;
    });
  };
  const out: Record<string, unknown> = {};
  for (const n of batches) {
    steps(ref, n, 1); // untimed first step of each batch size: allocations, JIT
    for (const g of native) steps(g, n, 1);
    const refS: number[] = [];
    const nativeS: number[][] = storages.map(() => []);
    for (let r = 0; r < (n === 1 ? rounds : 1); r++) {
      refS.push(...steps(ref, n, 1));
      native.forEach((g, i) => {
        nativeS[i].push(median(steps(g, n, per)));
      });
    }
    out[`b${n}`] = {
      reference_s: median(refS),
      ...Object.fromEntries(
        storages.flatMap((st, i) => {
          const ratios = refS.map((t, r) => t / nativeS[i][r]);
          return [
            [`native_${st}_s`, median(nativeS[i])],
            [`${st}_ratio`, median(ratios)],
            [`${st}_ratio_min`, Math.min(...ratios)],
            [`${st}_ratio_max`, Math.max(...ratios)],
          ];
        }),
      ),
    };
  }
  return out;
}

/** Per-op breakdown of decode steps (wraps the backend's methods with timers). */
function sectionProfile(model: string, storage: StorageDType, n: number, steps: number) {
  const be = cpuBackend();
  const bps = Math.ceil((CTX + 2 + steps + 1) / BLOCK);
  const g = build(model, be, storage, n * bps, n);
  const prof = new Map<string, number>();
  const ops = ["beginStep", "embed", "rmsNorm", "addRmsNorm", "matmul", "rope", "headNorm", "writeKv", "attention"];
  ops.push("gatedAct", "gatherRows", "read");
  const target = be as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const k of ops) {
    const orig = target[k].bind(be);
    target[k] = (...a: unknown[]) => {
      const t0 = performance.now();
      const r = orig(...a);
      prof.set(k, (prof.get(k) ?? 0) + performance.now() - t0);
      return r;
    };
  }
  // matmul time per weight shape
  const byShape = new Map<string, number>();
  const mm = target.matmul;
  target.matmul = (...a: unknown[]) => {
    const t0 = performance.now();
    const r = mm(...a);
    const key = (a[2] as { shape: number[] }).shape.join("x");
    byShape.set(key, (byShape.get(key) ?? 0) + performance.now() - t0);
    return r;
  };
  timeDecode(g, n, 2, 2);
  prof.clear();
  byShape.clear();
  const stepS = timeDecode(g, n, steps, 0).median;
  const total = [...prof.values()].reduce((a, b) => a + b, 0);
  console.log(`${model} ${storage} batch ${n}: ${(stepS * 1e3).toFixed(2)} ms/step (median), ops:`);
  for (const [k, v] of [...prof].sort((a, b) => b[1] - a[1])) {
    console.log(
      `  ${k.padEnd(12)} ${(v / steps).toFixed(3).padStart(9)} ms  ${((100 * v) / total).toFixed(1).padStart(5)}%`,
    );
  }
  console.log("  matmul by weight shape:");
  for (const [k, v] of [...byShape].sort((a, b) => b[1] - a[1])) {
    console.log(`    ${k.padEnd(12)} ${(v / steps).toFixed(3).padStart(9)} ms`);
  }
  return {};
}

function runChild(section: string, params: string[] = []): Record<string, unknown> {
  const res = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      SELF,
      "--child",
      section,
      ...params,
      "--threads",
      String(THREADS),
      ...(QUICK ? ["--quick"] : []),
    ],
    { encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"] },
  );
  const line = (res.stdout ?? "").split("\n").find((l) => l.startsWith("__RESULT__"));
  if (res.status !== 0 || !line) throw new Error(`bench child ${section} ${params.join(" ")} failed (${res.status})`);
  return JSON.parse(line.slice("__RESULT__".length));
}

// ------------------------------------------------------------------------------------------------
// main
// ------------------------------------------------------------------------------------------------

if (flag("--profile")) {
  const p = args.slice(args.indexOf("--profile") + 1).filter((a) => !a.startsWith("--"));
  sectionProfile(p[0] ?? "smol360m", (p[1] ?? "int8") as StorageDType, Number(p[2] ?? 1), Number(p[3] ?? 8));
  process.exit(0);
}

if (flag("--child")) {
  const section = opt("--child");
  const params = args.slice(args.indexOf("--child") + 2).filter((a) => !a.startsWith("--"));
  let result: unknown;
  if (section === "bandwidth") result = sectionBandwidth();
  else if (section === "decode") result = sectionDecode(params[0], params[1] as StorageDType);
  else if (section === "reference") result = sectionReference();
  else if (section === "rss") result = sectionRss();
  else if (section === "served") result = await servedDecode(params[0] as "none" | "int8", THREADS, QUICK);
  else throw new Error(`unknown section ${section}`);
  console.log(`__RESULT__${JSON.stringify(result)}`);
  process.exit(0);
}

const probe = CpuBackend.tryLoad({ threads: 1, isa: ISA });
if ("error" in probe) {
  console.error(`bench-cpu: ${probe.error}`);
  process.exit(1);
}
probe.backend.dispose();

const log = (s = "") => console.log(s);
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
const f1 = (x: number) => x.toFixed(1);
const mb = (x: number) => `${(x / 2 ** 20).toFixed(0)} MB`;
const pad = (s: string | number, n: number) => String(s).padStart(n);

log(`CPU: ${cpus()[0]?.model ?? "?"}, ${THREADS} threads${QUICK ? " (quick)" : ""}`);
type Gemv = {
  bytes: number;
  coldGBs: number;
  coldBestGBs: number;
  pctOfProbeRounds: number;
  pctOfProbeRoundsMin: number;
  pctOfProbeRoundsMax: number;
  hotGBs: number;
  gemm64Gflops: number;
};
const bw = runChild("bandwidth") as {
  isa: string;
  threads: number;
  probeGBs: number;
  probeBestGBs: number;
  gemv: Record<string, Gemv>;
};
log(`ISA: ${bw.isa}`);
log();
log(`(a) bandwidth probe (1 GB streaming read): ${f1(bw.probeGBs)} GB/s median, ${f1(bw.probeBestGBs)} best`);
log(
  "    GEMV 4096x4096, 1 row   cold GB/s  % probe  (rounds: median, range)  (best, % best)   hot GB/s   GEMM 64 rows GFLOP/s",
);
for (const [st, g] of Object.entries(bw.gemv)) {
  log(
    `    ${st.padEnd(22)}${pad(f1(g.coldGBs), 9)}${pad(pct(g.coldGBs / bw.probeGBs), 10)}${pad(`${pct(g.pctOfProbeRounds)} (${pct(g.pctOfProbeRoundsMin)}-${pct(g.pctOfProbeRoundsMax)})`, 22)}${pad(`(${f1(g.coldBestGBs)}, ${pct(g.coldBestGBs / bw.probeBestGBs)})`, 16)}${pad(f1(g.hotGBs), 11)}${pad(f1(g.gemm64Gflops), 12)}`,
  );
}

type Decode = {
  model: string;
  storage: string;
  loadS: number;
  tokS: Record<string, number>;
  tokSBest: Record<string, number>;
  probeGBs: number;
  b1PctOfProbe: number;
  b64OverB1Rounds: number;
  idlePrefetchGain: number;
  weightBytes: number;
  bytesPerToken: number;
  kvBytes: number;
};
const decodes: Decode[] = [];
for (const model of ["tiny-llama", "smol360m"]) {
  for (const storage of ["bf16", "int8"]) decodes.push(runChild("decode", [model, storage]) as unknown as Decode);
}
log();
log(`(b) decode tokens/s (context ${CTX}, ${KV} KV cache, one token per sequence, logits for every sequence)`);
log(
  "    model        weights  weight MB   batch 1  batch 16  batch 64  64/1   (rounds)  b1 % of BW/bytes (probe)  idle prefetch",
);
for (const d of decodes) {
  const ideal = (d.probeGBs * 1e9) / d.bytesPerToken;
  for (const [label, t] of [
    ["median", d.tokS],
    ["best", d.tokSBest],
  ] as const) {
    const name = label === "median" ? `${d.model.padEnd(12)} ${d.storage.padEnd(8)}` : `${"  (best)".padEnd(21)}`;
    log(
      `    ${name}${pad(label === "median" ? (d.weightBytes / 2 ** 20).toFixed(0) : "", 9)}${pad(f1(t[1]), 10)}${pad(f1(t[16]), 10)}${pad(f1(t[64]), 10)}${pad(`${f1(t[64] / t[1])}x`, 7)}${pad(label === "median" ? `${f1(d.b64OverB1Rounds)}x` : "", 9)}${pad(pct(label === "median" ? d.b1PctOfProbe : t[1] / ideal), 10)}${label === "median" ? `${pad(`(${f1(d.probeGBs)})`, 9)}${pad(`${d.idlePrefetchGain.toFixed(3)}x`, 15)}` : ""}`,
    );
  }
}

type RefSide = Record<string, number>;
const ref = runChild("reference") as Record<string, RefSide>;
log();
log("(c) 360M shape, native ÷ reference (reference f32; bf16 is what each backend runs a bf16 checkpoint as)");
for (const [key, r] of Object.entries(ref)) {
  const ratio = (st: string) =>
    `${st} ${f1(r[`native_${st}_s`] * 1e3)} ms ${f1(r[`${st}_ratio`])}x${r[`${st}_ratio_min`] !== r[`${st}_ratio_max`] ? ` (${f1(r[`${st}_ratio_min`])}-${f1(r[`${st}_ratio_max`])})` : ""}`;
  log(
    `    batch ${key.slice(1).padEnd(3)} reference ${f1(r.reference_s * 1e3)} ms a step; native ${["f32", "bf16", "int8"].map(ratio).join(", ")}`,
  );
}

const rss = runChild("rss") as { maxRssBytes: number; weightBytes: number; kvBytes: number };
const budget = rss.weightBytes + rss.kvBytes + 300 * 2 ** 20;
log();
log("(d) peak RSS, 360M int8 process (load + decode at batch 1/16/64)");
log(
  `    maxRSS ${mb(rss.maxRssBytes)} vs budget ${mb(budget)} (weights ${mb(rss.weightBytes)} + KV ${mb(rss.kvBytes)} + 300 MB): ${rss.maxRssBytes <= budget ? "within" : "OVER"}`,
);

const served = ["none", "int8"].map((q) => runChild("served", [q]) as unknown as ServedDecode);
log();
log("(e) served decode (engine core: scheduler + model + greedy sampling; tiny-llama, 64-token prompts)");
log("    weights  KV cache   batch 1  batch 16  batch 64  64/1 (rounds)  argmax on the backend at 64 (paired)");
for (const s of served) {
  log(
    `    ${s.storage.padEnd(8)} ${s.kvCacheDtype.padEnd(8)}${pad(f1(s.tokS[1]), 10)}${pad(f1(s.tokS[16]), 10)}${pad(f1(s.tokS[64]), 10)}${pad(`${f1(s.tokS[64] / s.tokS[1])}x`, 7)}${pad(`(${f1(s.b64OverB1Rounds)}x)`, 9)}${pad(`${s.argmaxOnBackendGain.toFixed(3)}x`, 14)}`,
  );
}

const smolI8 = decodes.find((d) => d.model === "smol360m" && d.storage === "int8") as Decode;
const smolBf16 = decodes.find((d) => d.model === "smol360m" && d.storage === "bf16") as Decode;
const goals = {
  gemvBf16PctOfProbe: bw.gemv.bf16.coldGBs / bw.probeGBs,
  gemvInt8PctOfProbe: bw.gemv.int8.coldGBs / bw.probeGBs,
  gemvBf16PctOfProbeRounds: bw.gemv.bf16.pctOfProbeRounds,
  gemvInt8PctOfProbeRounds: bw.gemv.int8.pctOfProbeRounds,
  smolInt8Batch64OverBatch1: smolI8.tokS[64] / smolI8.tokS[1],
  smolBf16Batch64OverBatch1: smolBf16.tokS[64] / smolBf16.tokS[1],
  smolInt8Batch1PctOfBandwidth: smolI8.b1PctOfProbe,
  smolInt8Batch1IdlePrefetchGain: smolI8.idlePrefetchGain,
  nativeBf16OverReference: ref.b1.bf16_ratio,
  nativeF32OverReference: ref.b1.f32_ratio,
  nativeInt8OverReference: ref.b1.int8_ratio,
  nativeBf16OverReferenceBatch16: ref.b16?.bf16_ratio,
  rssWithinBudget: rss.maxRssBytes <= budget,
};
const jsonOut = opt("--json");
if (jsonOut) {
  mkdirSync(dirname(jsonOut), { recursive: true });
  writeFileSync(
    jsonOut,
    `${JSON.stringify({ cpu: cpus()[0]?.model, threads: THREADS, kv: KV, quick: QUICK, bandwidth: bw, decode: decodes, reference: ref, rss: { ...rss, budgetBytes: budget }, served, goals }, null, 2)}\n`,
  );
  log(`\nwrote ${jsonOut}`);
}
