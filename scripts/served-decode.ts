/**
 * Decode throughput as served (bench-cpu.ts section (e)): the engine core (scheduler, model runner, greedy
 * sampling) on models/tiny-llama with the native CPU backend and the engine's defaults (bf16 KV cache for
 * this bf16 checkpoint), n = 1, 16 and 64 concurrent requests of a 64-token prompt each. A round per batch
 * size adds its requests, runs their prefill, then times `steps` decode steps (every sequence adds one
 * token a step); the batch sizes alternate in rounds so that a slow spell of the machine lands on all of
 * them. Also the gain of taking greedy argmaxes on the backend (Backend.argmaxRows) at batch 64: rounds with
 * and without it, paired.
 */

import { percentile } from "../src/bench/metrics.ts";
import { buildCore } from "../src/engine/build-core.ts";
import { DEFAULT_ENGINE_OPTIONS } from "../src/engine/options.ts";
import { normalizeSamplingParams } from "../src/sampler/params.ts";

const PROMPT = 64;
const median = (xs: number[]) => percentile(xs, 50);

export interface ServedDecode {
  storage: string;
  kvCacheDtype: string;
  /** Median decode tokens/s per batch size. */
  tokS: Record<number, number>;
  /** Median over the rounds of each round's batch-64 ÷ batch-1 throughput. */
  b64OverB1Rounds: number;
  /** Batch 64 with argmaxRows ÷ without (logits read back, argmax in JS): median of paired rounds. */
  argmaxOnBackendGain: number;
}

export async function servedDecode(
  quantization: "none" | "int8",
  threads: number,
  quick: boolean,
): Promise<ServedDecode> {
  const built = await buildCore({
    ...DEFAULT_ENGINE_OPTIONS,
    backend: "cpu",
    threads,
    quantization,
    kvCacheMemory: 256 << 20,
  });
  const core = built.core;
  const backend = core.runner.graph.backend;
  const argmaxRows = backend.argmaxRows;
  let tag = 0;
  /** Decode tokens/s of n concurrent requests over `steps` steps after their prefill. */
  const rate = (n: number, steps: number, onBackend = true): number => {
    backend.argmaxRows = onBackend ? argmaxRows : undefined;
    const t = tag++;
    for (let i = 0; i < n; i++) {
      const promptTokenIds = Array.from({ length: PROMPT }, (_, k) => 5 + ((i * 131 + k * 17 + t * 7) % 4000));
      const params = normalizeSamplingParams(
        { temperature: 0, maxTokens: steps + 2, ignoreEos: true },
        { vocabSize: built.info.vocabSize, defaultMaxTokens: steps + 2 },
      );
      core.addRequest({ id: `s${t}-${i}`, promptTokenIds, params });
    }
    let first = 0;
    while (first < n) for (const d of core.step()) if (d.tokenIds.length > 0) first++;
    const t0 = performance.now();
    let tokens = 0;
    for (let s = 0; s < steps; s++) for (const d of core.step()) tokens += d.tokenIds.length;
    const seconds = (performance.now() - t0) / 1e3;
    while (core.hasWork()) core.step();
    backend.argmaxRows = argmaxRows;
    return tokens / seconds;
  };
  const batches = [1, 16, 64];
  const stepsOf = (n: number) => (quick ? 4 : n === 1 ? 48 : 16);
  for (const n of batches) rate(n, 2); // warm-up
  const rounds = quick ? 1 : 5;
  const tok: Record<number, number[]> = { 1: [], 16: [], 64: [] };
  const gains: number[] = [];
  for (let r = 0; r < rounds; r++) for (const n of batches) tok[n].push(rate(n, stepsOf(n)));
  for (let r = 0; r < (quick ? 2 : 10); r++) {
    // the pair's order flips every time
    const pair = r % 2 === 0 ? [true, false] : [false, true];
    const [a, b] = pair.map((on) => rate(64, stepsOf(64), on));
    gains.push(pair[0] ? a / b : b / a);
  }
  return {
    storage: quantization === "none" ? built.info.dtype : quantization,
    kvCacheDtype: built.info.kvCacheDtype,
    tokS: Object.fromEntries(batches.map((n) => [n, median(tok[n])])),
    b64OverB1Rounds: median(tok[64].map((t, r) => t / tok[1][r])),
    argmaxOnBackendGain: median(gains),
  };
}
