/**
 * The engine on `--backend cuda`, through the CPU emulation of the CUDA addon (see emulated.test.ts): the
 * KV pool sized from (emulated) device memory, chunked prefill, batched decode replayed from CUDA graphs,
 * and the greedy tokens of concurrent requests equal to transformers' (f32 matmuls: tensor cores off).
 * Skipped when the emulated addon is not built.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { CudaGraphBackend } from "../../src/backends/cuda/graph-backend.ts";
import { buildCore } from "../../src/engine/build-core.ts";
import { DEFAULT_ENGINE_OPTIONS } from "../../src/engine/options.ts";
import { readRefFile } from "../../src/models/validate.ts";
import { normalizeSamplingParams } from "../../src/sampler/params.ts";

const path =
  process.env.LOOM_CUDA_EMU_ADDON ?? fileURLToPath(new URL("../../build/cuda-emu/loom_cuda.node", import.meta.url));

test("engine on the cuda backend (emulated): KV plan, CUDA-graph decode, greedy = transformers", {
  skip: existsSync(path) ? false : `emulated addon not built (node scripts/build-cuda.mjs --emulate): ${path}`,
}, async () => {
  process.env.LOOM_CUDA_ADDON = path;
  process.env.LOOM_CUDA_TC_MIN_ROWS = "inf";
  // The emulation reports 8 GiB: 6% of it leaves ~150 MB of KV after weights, activations and the reserve.
  const { core, info } = await buildCore({
    ...DEFAULT_ENGINE_OPTIONS,
    backend: "cuda",
    gpuMemoryUtilization: 0.06,
    maxNumBatchedTokens: 256,
    maxNumSeqs: 8,
  });
  assert.match(info.backend, /cuda|emul/i);
  assert.ok(info.numBlocks > 100 && info.numBlocks < 5000, `KV blocks ${info.numBlocks}`);
  const refs = readRefFile("test/fixtures/refs/tiny-llama.json").cases.filter((c) => c.prompt_ids.length < 200);
  const N = 12;
  const params = normalizeSamplingParams(
    { temperature: 0, maxTokens: N, ignoreEos: true },
    { vocabSize: 4096, defaultMaxTokens: N },
  );
  // greedy decode takes its ids on the device (Backend.argmaxRows through the CUDA-graph decorator)
  const be = (core.runner as unknown as { graph: { backend: { argmaxRows?: (...a: never[]) => void } } }).graph.backend;
  const argmax = be.argmaxRows;
  assert.ok(argmax, "the cuda backend offers argmaxRows");
  let argmaxCalls = 0;
  be.argmaxRows = (...a: never[]) => {
    argmaxCalls++;
    argmax(...a);
  };
  for (const c of refs) core.addRequest({ id: c.name, promptTokenIds: c.prompt_ids, params });
  const out = new Map<string, number[]>(refs.map((c) => [c.name, []]));
  while (core.hasWork()) {
    for (const d of core.step()) out.get(d.requestId)?.push(...d.tokenIds);
  }
  for (const c of refs) {
    // compare up to the first near-tie of the reference's greedy continuation
    const tie = c.greedy_top1_top2_gap.findIndex((g) => g < 1e-3);
    const n = Math.min(N, c.greedy_ids.length, tie < 0 ? N : tie + 1);
    assert.deepEqual(out.get(c.name)?.slice(0, n), c.greedy_ids.slice(0, n), c.name);
  }
  const graphs = (core.runner as unknown as { graph: { backend: CudaGraphBackend } }).graph.backend.stats;
  assert.ok(graphs.replays > 0, `decode steps replayed from CUDA graphs: ${JSON.stringify(graphs)}`);
  assert.ok(argmaxCalls >= N - 1, `greedy steps with the argmax on the device: ${argmaxCalls}`);
});
