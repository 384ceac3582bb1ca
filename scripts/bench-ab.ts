/**
 * Paired A/B of two builds of the native CPU addon, loaded side by side in one process. This machine's
 * speed drifts by tens of percent within minutes (the same build's 360M int8 batch-1 step: 15.5 ms, then
 * 22–24 ms half an hour later), so separate runs cannot resolve a few percent; pairs taken a millisecond
 * apart can.
 *
 *   node --import tsx scripts/bench-ab.ts A.node B.node [--model tiny-llama|smol360m] [--weights int8]
 *        [--batch 1] [--steps 60] [--threads N] [--kv bf16|int8|f16|f32]
 *   node --import tsx scripts/bench-ab.ts A.node B.node --gemv 5120x960 [--weights int8] [--rows 1] [--hot]
 *   node --import tsx scripts/bench-ab.ts A.node B.node --prefill 1536 [--model M] [--weights bf16] [--steps 12]
 *   node --import tsx scripts/bench-ab.ts A.node B.node --attention 1x1536x1536 [--kv bf16] [--head-dim 64] [--steps 40]
 *
 * Keep a build by copying build/Release/loom_cpu.node aside before rebuilding (Node caches an addon by
 * path). Decode mode alternates one step of each build (the order flips every pair), each after a short
 * pause so that the other pool's spinning helper has gone to sleep, and reports each build's median step
 * and the median of the per-pair ratios A/B (> 1: B is faster). --gemv times batch-`rows` matmuls of an
 * N×K matrix, weights cold (each build rotates through ≥ 600 MB of copies; --hot: one copy, from cache),
 * eight per sample, in pairs.
 * --prefill T times the forward pass of one T-token prompt (logits of its last token), in pairs.
 * --attention SxQxC times the attention op alone with tiny-llama's heads (6 query, 2 KV; 64 wide unless
 * --head-dim says otherwise): S sequences of C tokens of context, the last Q of each in the step (Q = C:
 * prompts; Q = 1: decode; a few: speculative verification), over four KV layers in turn, in pairs.
 * The build loaded second has read ~1–2% faster in A/A runs: run both orders.
 */
import { resolve } from "node:path";
import type { KvDType, StorageDType } from "../src/backends/backend.ts";
import { CpuBackend } from "../src/backends/cpu/cpu-backend.ts";
import { percentile } from "../src/bench/metrics.ts";
import { hostBf16 } from "../src/formats/dtype.ts";
import { type BenchModel, BLOCK, benchGraph, CTX, chunkMeta, decodeMeta, prefillMeta } from "./bench-decode.ts";

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const builds = args.filter((a) => a.endsWith(".node")).map((a) => resolve(a));
if (builds.length !== 2) {
  console.error("usage: node --import tsx scripts/bench-ab.ts A.node B.node [--model M] [--gemv NxK] …");
  process.exit(2);
}
const storage = opt("--weights", "int8") as StorageDType;
const kvDtype = opt("--kv", "bf16") as KvDType;
const threads = Number(opt("--threads", "2"));
const pause = new Int32Array(new SharedArrayBuffer(4));
const rest = () => Atomics.wait(pause, 0, 0, 0.5);
const median = (xs: number[]) => percentile(xs, 50);

const backends = builds.map((addonPath) => {
  const r = CpuBackend.tryLoad({ threads, addonPath });
  if ("error" in r) {
    console.error(`bench-ab: ${r.error}`);
    process.exit(1);
  }
  return r.backend;
});

/** Runs sample(v) for build v in alternating pairs; returns each build's median and the paired A/B ratio. */
function paired(pairs: number, sample: (v: number) => number) {
  const t: number[][] = [[], []];
  for (let i = 0; i < pairs; i++)
    for (const v of i % 2 ? [1, 0] : [0, 1]) {
      rest();
      t[v].push(sample(v));
    }
  return { a: median(t[0]), b: median(t[1]), ratio: median(t[0].map((x, i) => x / t[1][i])) };
}

const gemv = opt("--gemv", "");
const attention = opt("--attention", "");
const prefill = Number(opt("--prefill", "0"));
if (prefill > 0) {
  const model = opt("--model", "tiny-llama") as BenchModel;
  const numBlocks = Math.ceil(prefill / BLOCK);
  const graphs = backends.map((be) => benchGraph(model, be, storage, { maxTokens: prefill, numBlocks, kvDtype }));
  const meta = prefillMeta(prefill, graphs[0].cfg.vocabSize);
  const last = Int32Array.of(prefill - 1);
  for (const g of graphs) g.forward(meta, last);
  const r = paired(Number(opt("--steps", "12")), (v) => {
    const t0 = performance.now();
    graphs[v].forward(meta, last);
    return performance.now() - t0;
  });
  console.log(
    `${model} ${storage} prefill of ${prefill} tokens: A ${r.a.toFixed(1)} ms, B ${r.b.toFixed(1)} ms, paired A/B ${r.ratio.toFixed(3)}x`,
  );
} else if (attention) {
  const [seqs, qLen, ctx] = attention.split("x").map(Number);
  const H = 6;
  const KVH = 2;
  const D = Number(opt("--head-dim", "64"));
  const stride = (H + 2 * KVH) * D;
  const fill = chunkMeta(seqs, ctx, ctx, 1);
  const step = chunkMeta(seqs, qLen, ctx, 1);
  const params = { numHeads: H, numKvHeads: KVH, headDim: D, scale: D ** -0.5, slidingWindow: 0, softcap: 0 };
  const host = new Float32Array(seqs * ctx * stride).map((_, i) => Math.sin(i * 0.37));
  const sets = backends.map((be) => {
    // four layers' caches in turn, so that the keys do not all sit in L2 as one layer's would
    const kvs = Array.from({ length: 4 }, () => be.kvLayer(seqs * fill.maxBlocksPerSeq, BLOCK, KVH, D, kvDtype));
    const qkv = be.buffer(host.length);
    be.write(qkv, host);
    be.beginStep(fill);
    for (const kv of kvs) be.writeKv(kv, qkv, stride, H * D, (H + KVH) * D);
    be.beginStep(step);
    return { be, kvs, qkv, out: be.buffer(seqs * qLen * H * D) };
  });
  const r = paired(Number(opt("--steps", "40")), (v) => {
    const { be, kvs, qkv, out } = sets[v];
    const t0 = performance.now();
    for (const kv of kvs) be.attention(out, qkv, stride, kv, params);
    return (performance.now() - t0) / kvs.length;
  });
  console.log(
    `attention ${seqs}x${qLen}x${ctx} (KV ${kvDtype}, head dim ${D}): A ${r.a.toFixed(3)} ms, B ${r.b.toFixed(3)} ms a call, paired A/B ${r.ratio.toFixed(3)}x`,
  );
} else if (gemv) {
  const [N, K] = gemv.split("x").map(Number);
  const rows = Number(opt("--rows", "1"));
  const hot = args.includes("--hot");
  const vals = new Float32Array(N * K).map((_, i) => Math.sin(i * 0.37) * 0.05);
  const host = hostBf16(vals, [N, K]);
  const sets = backends.map((be) => {
    // --hot: one matrix, read from cache every time (the kernel's arithmetic alone, without DRAM)
    const ws = Array.from({ length: hot ? 1 : Math.ceil(6e8 / (N * K)) }, () => be.weight(host, storage));
    const x = be.buffer(rows * K);
    be.write(
      x,
      new Float32Array(rows * K).map((_, i) => Math.cos(i)),
    );
    return { be, ws, x, y: be.buffer(rows * N), next: 0 };
  });
  const bytes = (sets[0].ws[0] as unknown as { bytes: number }).bytes;
  const r = paired(400, (v) => {
    const s = sets[v];
    s.be.matmul(s.y, s.x, s.ws[(s.next + 7) % s.ws.length], null, rows);
    const t0 = performance.now();
    for (let j = 0; j < 8; j++) s.be.matmul(s.y, s.x, s.ws[s.next++ % s.ws.length], null, rows);
    return (performance.now() - t0) / 8;
  });
  const gbs = (ms: number) => (bytes / ms / 1e6).toFixed(1);
  console.log(
    `GEMV ${N}x${K} ${storage}, ${rows} row(s), ${hot ? "hot" : "cold"}: A ${gbs(r.a)} GB/s, B ${gbs(r.b)} GB/s, paired A/B ${r.ratio.toFixed(3)}x`,
  );
} else {
  const model = opt("--model", "tiny-llama") as BenchModel;
  const batch = Number(opt("--batch", "1"));
  const steps = Number(opt("--steps", "60"));
  const bps = Math.ceil((CTX + 8 + 1) / BLOCK);
  const graphs = backends.map((be) =>
    benchGraph(model, be, storage, { maxTokens: Math.max(batch, 64), numBlocks: batch * bps, kvDtype }),
  );
  const vocab = graphs[0].cfg.vocabSize;
  const rows = Int32Array.from({ length: batch }, (_, i) => i);
  for (const g of graphs) for (let i = 0; i < 3; i++) g.forward(decodeMeta(batch, i, bps, vocab), rows);
  let step = 0;
  const r = paired(steps, (v) => {
    const m = decodeMeta(batch, step++ % 8, bps, vocab);
    const t0 = performance.now();
    graphs[v].forward(m, rows);
    return performance.now() - t0;
  });
  console.log(
    `${model} ${storage} batch ${batch}: A ${r.a.toFixed(3)} ms, B ${r.b.toFixed(3)} ms a step, paired A/B ${r.ratio.toFixed(3)}x`,
  );
}
for (const be of backends) be.dispose();
