/**
 * GPU benchmark of the CUDA backend on a random-weight model of Llama-3.2-1B's shape in bf16 (hidden 2048,
 * 16 layers, 32 heads / 8 KV heads of 64, intermediate 8192, vocab 128256, tied embeddings), built in
 * memory — no checkpoint needed.
 *
 *   node --import tsx scripts/bench-gpu.ts [--batches 1,8,32,128,256] [--prompt 128] [--gen 128]
 *        [--json out.json] [--transformers tf.json] [--no-graphs]
 *   node --import tsx scripts/bench-gpu.ts --write-config llama-1b.json    (the config, for bench-transformers.py)
 *   node --import tsx scripts/bench-gpu.ts --smoke     (a tiny model, batches 1 and 3: checks the driver, e.g. on
 *                                                       the CPU emulation of the kernels)
 *   node --import tsx scripts/bench-gpu.ts --gemv [--rows 1,2,4,8,16] [--smoke]   (each matmul shape alone, GB/s,
 *                                                       GEMV kernel and cuBLAS)
 *
 * Per concurrency N: N sequences with `prompt` random token ids each are prefilled (chunks of up to
 * 2048 tokens per step), then decoded greedily until each has `gen` new tokens; every sequence's first
 * token comes from its prefill. Output throughput = N·gen / (prefill + decode) wall time; decode
 * throughput = N·(gen − 1) / decode time. Each N runs once untimed first (CUDA graph warm-up/capture).
 *
 * This drives the real graph (src/models/graph.ts) and backend (CudaBackend behind CudaGraphBackend) in a
 * static batch: it measures the model step, not the scheduler or the HTTP server. Logits never leave the
 * GPU: the graph's final logits read is turned into GPU greedy sampling (a proxy around the backend),
 * which is what the engine's model runner should do once it samples on the device.
 *
 * Batch 1 is compared with the memory roofline: tokens/s ≤ the card's datasheet bandwidth ÷ bytes of weights
 * read per token (H100 SXM 3.35 TB/s, H200 4.8 TB/s), and with the device-to-device copy bandwidth that
 * bench-transformers.py measures. With --transformers, the table adds transformers' generate on the same
 * shape and card (scripts/bench-transformers.py) and the ratio.
 */
import { readFileSync, writeFileSync } from "node:fs";
import type { Backend, Buf, StepMeta } from "../src/backends/backend.ts";
import { CudaBackend, type CudaBackendOptions } from "../src/backends/cuda/cuda-backend.ts";
import { CudaGraphBackend } from "../src/backends/cuda/graph-backend.ts";
import { parseConfig } from "../src/models/config.ts";
import { LlamaGraph } from "../src/models/graph.ts";
import { loadWeights } from "../src/models/weights.ts";
import { randomBf16Pool, randomBf16Tensor, randomCheckpoint } from "./random-weights.ts";

/** Llama-3.2-1B's config.json (transformers v5 form), as given to transformers too. */
export const LLAMA_1B_CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64,
  vocab_size: 128256,
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  hidden_act: "silu",
  tie_word_embeddings: true,
  attention_bias: false,
  mlp_bias: false,
  rope_parameters: {
    rope_type: "llama3",
    rope_theta: 500000,
    factor: 32,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
  },
  bos_token_id: 128000,
  eos_token_id: null,
  dtype: "bfloat16",
};

/** A tiny model of the same family for --smoke runs. */
const SMOKE_CONFIG = {
  ...LLAMA_1B_CONFIG,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  vocab_size: 512,
};

/** Datasheet memory bandwidth by card name (the issue's roofline is the H100 SXM's 3.35 TB/s). */
function datasheetBandwidth(device: string): { bytesPerS: number; card: string } {
  if (/H200/.test(device)) return { bytesPerS: 4.8e12, card: "H200" };
  if (/H100.*PCIe/i.test(device)) return { bytesPerS: 2.0e12, card: "H100 PCIe" };
  return { bytesPerS: 3.35e12, card: /H100/.test(device) ? "H100 SXM" : "H100 SXM (assumed)" };
}
const BLOCK = 16;
const MAX_TOKENS = 2048;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

/** The CUDA backend, or exit 2 with the one-line reason it cannot load. */
function loadCuda(opts: CudaBackendOptions = {}): CudaBackend {
  const loaded = CudaBackend.tryLoad(opts);
  if ("error" in loaded) {
    console.error(`bench-gpu: CUDA backend unavailable: ${loaded.error}`);
    process.exit(2);
  }
  return loaded.backend;
}

/**
 * --gemv: each of the model's matmul shapes alone, as weight-read bandwidth, for several row counts, on the
 * GEMV kernel and on cuBLAS (two backends: tensorCoreMinRows Infinity and 1). Each shape gets enough weight
 * copies to total ≥ 512 MB (several times the L2), one matmul per copy captured in a CUDA graph so launch
 * overhead stays out, and the graph is replayed until ~2 GB were read.
 */
function benchGemv(cfg: typeof LLAMA_1B_CONFIG, rowsList: number[]): string[] {
  const h = cfg.hidden_size;
  const qkv = (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * cfg.head_dim;
  const shapes: [string, number, number][] = [
    ["qkv", qkv, h],
    ["o", h, cfg.num_attention_heads * cfg.head_dim],
    ["gate_up", 2 * cfg.intermediate_size, h],
    ["down", h, cfg.intermediate_size],
    ["lm_head", cfg.vocab_size, h],
  ];
  const pool = randomBf16Pool();
  const gbps = new Map<string, number>(); // `${path} ${shape} ${rows}` → GB/s
  let key = 0x6e6d00;
  for (const path of ["gemv", "cublas"] as const) {
    const cuda = loadCuda({ tensorCoreMinRows: path === "gemv" ? Number.POSITIVE_INFINITY : 1 });
    for (const [name, N, K] of shapes) {
      const bytes = N * K * 2;
      const copies = Math.max(1, Math.min(64, Math.ceil(512e6 / bytes)));
      const host = randomBf16Tensor([N, K], pool);
      const ws = Array.from({ length: copies }, () => cuda.weight(host, "bf16"));
      const maxRows = Math.max(...rowsList);
      const x = cuda.buffer(maxRows * K);
      const out = cuda.buffer(maxRows * N);
      const xs = new Float32Array(maxRows * K);
      for (let i = 0; i < xs.length; i++) xs[i] = Math.sin(i * 0.37);
      cuda.write(x, xs);
      for (const rows of rowsList) {
        if (path === "gemv" && rows > 8) continue; // the GEMV kernel takes ≤ 8 rows
        for (const w of ws) cuda.matmul(out, x, w, null, rows); // warm-up: module load, scratch, heuristics
        cuda.beginCapture();
        for (const w of ws) cuda.matmul(out, x, w, null, rows);
        cuda.endCapture(++key);
        cuda.replayGraph(key);
        cuda.synchronize();
        const reps = Math.max(2, Math.min(50, Math.ceil(2e9 / (bytes * copies))));
        const t0 = performance.now();
        for (let r = 0; r < reps; r++) cuda.replayGraph(key);
        cuda.synchronize();
        const us = ((performance.now() - t0) * 1000) / (reps * copies);
        gbps.set(`${path} ${name} ${rows}`, bytes / us / 1e3);
      }
    }
    cuda.dispose();
  }
  const lines = [
    "matmul alone, bf16 weights, GB/s of weight read (CUDA graph of one launch per weight copy, cold in L2);",
    "each cell: GEMV kernel / cuBLAS",
    `shape      N x K            MB  ${rowsList.map((r) => `rows ${r}`.padStart(12)).join("")}`,
  ];
  for (const [name, N, K] of shapes) {
    const cell = (r: number) => {
      const g = gbps.get(`gemv ${name} ${r}`);
      const c = gbps.get(`cublas ${name} ${r}`);
      return `${g ? g.toFixed(0) : "-"}/${c ? c.toFixed(0) : "-"}`.padStart(12);
    };
    lines.push(
      `${name.padEnd(9)}  ${`${N} x ${K}`.padEnd(15)}  ${((N * K * 2) / 1e6).toFixed(1).padStart(5)} ` +
        rowsList.map(cell).join(""),
    );
  }
  return lines;
}

/** The graph's backend, except that reading the final logits samples them greedily on the GPU instead. */
function gpuSamplingProxy(inner: Backend, cuda: CudaBackend, vocab: number, ids: { value: Int32Array }): Backend {
  const read = (buf: Buf, out: Float32Array) => {
    if (out.length >= vocab && out.length % vocab === 0 && buf.size >= out.length) {
      ids.value = cuda.sampleGreedy(buf, out.length / vocab, vocab, {
        outIds: ids.value.length >= out.length / vocab ? ids.value : undefined,
      });
      return;
    }
    inner.read(buf, out);
  };
  return new Proxy(inner, {
    get(t, p) {
      if (p === "read") return read;
      const v = Reflect.get(t, p, t);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
}

interface RunResult {
  batch: number;
  prefillSeconds: number;
  decodeSeconds: number;
  outputTokensPerS: number;
  decodeTokensPerS: number;
}

function main(): void {
  const smoke = flag("smoke");
  const model = smoke ? SMOKE_CONFIG : LLAMA_1B_CONFIG;
  const batches = arg("batches", smoke ? "1,3" : "1,8,32,128,256")
    .split(",")
    .map(Number);
  const promptLen = Number(arg("prompt", smoke ? "20" : "128"));
  const gen = Number(arg("gen", smoke ? "5" : "128"));
  const graphs = !flag("no-graphs");
  const configOut = arg("write-config", "");
  if (configOut) {
    writeFileSync(configOut, JSON.stringify(LLAMA_1B_CONFIG, null, 2));
    return;
  }

  if (flag("gemv")) {
    console.log(benchGemv(model, arg("rows", "1,2,4,8,16").split(",").map(Number)).join("\n"));
    return;
  }
  const cuda = loadCuda();
  const cfg = parseConfig(model as unknown as Record<string, unknown>);
  const maxBatch = Math.max(...batches);
  const maxLen = promptLen + gen;
  const blocksPerSeq = Math.ceil(maxLen / BLOCK);
  const numBlocks = maxBatch * blocksPerSeq + 1;
  const t0 = performance.now();
  const weights = loadWeights(cfg, randomCheckpoint(cfg), cuda, "bf16", () => {});
  const weightBytes = cuda.weightBytes;
  const graphBackend: Backend = graphs
    ? new CudaGraphBackend(cuda, { maxModelLen: maxLen, maxBatch: Math.min(MAX_TOKENS, 256) })
    : cuda;
  const sampled = { value: new Int32Array(maxBatch) };
  const backend = gpuSamplingProxy(graphBackend, cuda, cfg.vocabSize, sampled);
  const graph = new LlamaGraph(cfg, weights, backend, {
    maxTokens: MAX_TOKENS,
    numBlocks,
    blockSize: BLOCK,
    kvDtype: "bf16",
  });
  cuda.synchronize();
  const loadSeconds = (performance.now() - t0) / 1000;
  console.error(
    `bench-gpu: ${cuda.describe()}; weights ${(weightBytes / 1e9).toFixed(3)} GB in ${loadSeconds.toFixed(1)} s; ` +
      `KV ${(cuda.kvBytes / 1e9).toFixed(2)} GB; CUDA graphs ${graphs ? "on" : "off"}`,
  );

  // Reused step arrays for up to MAX_TOKENS tokens and maxBatch sequences.
  const mb = blocksPerSeq;
  const tokenIds = new Int32Array(MAX_TOKENS);
  const positions = new Int32Array(MAX_TOKENS);
  const slots = new Int32Array(MAX_TOKENS);
  const queryStart = new Int32Array(maxBatch + 1);
  const seqLens = new Int32Array(maxBatch);
  const blockTables = new Int32Array(maxBatch * mb);
  const logitRows = new Int32Array(maxBatch);
  for (let s = 0; s < maxBatch; s++) for (let j = 0; j < mb; j++) blockTables[s * mb + j] = 1 + s * mb + j;

  let rngState = 12345;
  const randToken = () => {
    rngState = (Math.imul(rngState, 1103515245) + 12345) >>> 0;
    return rngState % cfg.vocabSize;
  };

  const runOnce = (N: number, genTokens: number): RunResult => {
    const prompts = Array.from({ length: N }, () => Array.from({ length: promptLen }, randToken));
    const last = new Int32Array(N);
    const meta = (numTokens: number, numSeqs: number, first: number): StepMeta => ({
      numTokens,
      tokenIds: tokenIds.subarray(0, numTokens),
      positions: positions.subarray(0, numTokens),
      slotMapping: slots.subarray(0, numTokens),
      numSeqs,
      queryStart: queryStart.subarray(0, numSeqs + 1),
      seqLens: seqLens.subarray(0, numSeqs),
      blockTables: blockTables.subarray(first * mb, (first + numSeqs) * mb),
      maxBlocksPerSeq: mb,
    });
    const slotOf = (s: number, pos: number) => blockTables[s * mb + Math.floor(pos / BLOCK)] * BLOCK + (pos % BLOCK);
    cuda.synchronize();
    const tp = performance.now();
    // prefill in chunks of whole prompts
    const perStep = Math.max(1, Math.floor(MAX_TOKENS / promptLen));
    for (let first = 0; first < N; first += perStep) {
      const n = Math.min(perStep, N - first);
      let t = 0;
      for (let i = 0; i < n; i++) {
        const s = first + i;
        queryStart[i] = t;
        seqLens[i] = promptLen;
        for (let p = 0; p < promptLen; p++, t++) {
          tokenIds[t] = prompts[s][p];
          positions[t] = p;
          slots[t] = slotOf(s, p);
        }
        logitRows[i] = t - 1;
      }
      queryStart[n] = t;
      graph.forward(meta(t, n, first), logitRows.subarray(0, n));
      last.set(sampled.value.subarray(0, n), first);
    }
    cuda.synchronize();
    const td = performance.now();
    for (let k = 1; k < genTokens; k++) {
      const pos = promptLen + k - 1;
      for (let s = 0; s < N; s++) {
        tokenIds[s] = last[s];
        positions[s] = pos;
        slots[s] = slotOf(s, pos);
        queryStart[s] = s;
        seqLens[s] = pos + 1;
        logitRows[s] = s;
      }
      queryStart[N] = N;
      graph.forward(meta(N, N, 0), logitRows.subarray(0, N));
      last.set(sampled.value.subarray(0, N));
    }
    cuda.synchronize();
    const te = performance.now();
    const prefillSeconds = (td - tp) / 1000;
    const decodeSeconds = (te - td) / 1000;
    return {
      batch: N,
      prefillSeconds,
      decodeSeconds,
      outputTokensPerS: (N * genTokens) / (prefillSeconds + decodeSeconds),
      decodeTokensPerS: (N * (genTokens - 1)) / decodeSeconds,
    };
  };

  const results: RunResult[] = [];
  for (const N of batches) {
    runOnce(N, Math.min(gen, 4)); // warm-up: CUDA graph warm-up + capture at this batch size, cuBLAS heuristics
    const r = runOnce(N, gen);
    results.push(r);
    console.error(
      `bench-gpu: N=${N}: prefill ${r.prefillSeconds.toFixed(3)} s, decode ${r.decodeSeconds.toFixed(3)} s, ` +
        `${r.outputTokensPerS.toFixed(0)} output tok/s, ${r.decodeTokensPerS.toFixed(0)} decode tok/s`,
    );
  }

  const sheet = datasheetBandwidth(cuda.describe());
  const rooflineTokS = sheet.bytesPerS / weightBytes;
  const b1 = results.find((r) => r.batch === 1);
  let tf: Record<string, { tokens_per_s?: number; error?: string }> | null = null;
  let copyBytesPerS = 0;
  const tfPath = arg("transformers", "");
  if (tfPath) {
    try {
      const tfJson = JSON.parse(readFileSync(tfPath, "utf8"));
      tf = tfJson.results ?? null;
      copyBytesPerS = Number(tfJson.copy_bytes_per_s) || 0;
    } catch (e) {
      console.error(`bench-gpu: cannot read ${tfPath}: ${(e as Error).message}`);
    }
  }

  const lines: string[] = [];
  lines.push(
    `Loom CUDA, ${smoke ? "SMOKE (tiny) model" : "Llama-3.2-1B shape"}, bf16, random weights (${(weightBytes / 1e9).toFixed(2)} GB), prompt ${promptLen}, gen ${gen}`,
  );
  lines.push(`device: ${cuda.describe()}`);
  if (b1) {
    const pct = (tokS: number) => `${((100 * b1.decodeTokensPerS) / tokS).toFixed(0)}%`;
    lines.push(
      `batch-1 decode: ${b1.decodeTokensPerS.toFixed(0)} tok/s; roofline at the ${sheet.card}'s ` +
        `${(sheet.bytesPerS / 1e12).toFixed(2)} TB/s: ${rooflineTokS.toFixed(0)} tok/s (${pct(rooflineTokS)})` +
        (copyBytesPerS
          ? `; at the measured copy bandwidth ${(copyBytesPerS / 1e12).toFixed(2)} TB/s: ` +
            `${(copyBytesPerS / weightBytes).toFixed(0)} tok/s (${pct(copyBytesPerS / weightBytes)})`
          : ""),
    );
  }
  lines.push("concurrency  output tok/s  decode tok/s  prefill s  decode s  transformers tok/s  ratio");
  for (const r of results) {
    const t = tf?.[String(r.batch)]?.tokens_per_s;
    lines.push(
      `${String(r.batch).padStart(11)}  ${r.outputTokensPerS.toFixed(0).padStart(12)}  ${r.decodeTokensPerS.toFixed(0).padStart(12)}  ` +
        `${r.prefillSeconds.toFixed(3).padStart(9)}  ${r.decodeSeconds.toFixed(3).padStart(8)}  ` +
        `${(t ? t.toFixed(0) : "-").padStart(18)}  ${t ? `${(r.outputTokensPerS / t).toFixed(1)}x` : "-"}`,
    );
  }
  console.log(lines.join("\n"));
  const jsonOut = arg("json", "");
  if (jsonOut) {
    writeFileSync(
      jsonOut,
      JSON.stringify(
        {
          device: cuda.describe(),
          weightBytes,
          rooflineTokS,
          datasheetBytesPerS: sheet.bytesPerS,
          copyBytesPerS,
          graphs,
          promptLen,
          gen,
          results,
          transformers: tf,
          graphStats: graphBackend instanceof CudaGraphBackend ? graphBackend.stats : null,
        },
        null,
        2,
      ),
    );
  }
  cuda.dispose();
}

main();
