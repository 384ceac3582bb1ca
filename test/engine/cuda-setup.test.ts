/** `--backend cuda` wiring that needs no GPU: flags, the KV plan from device memory, the clear refusal. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CudaBackend } from "../../src/backends/cuda/cuda-backend.ts";
import { kvBytesPerBlock, planKvMemory } from "../../src/backends/cuda/kv-memory.ts";
import { buildCore } from "../../src/engine/build-core.ts";
import { planCudaKv } from "../../src/engine/cuda-setup.ts";
import { DEFAULT_ENGINE_OPTIONS, engineOptionsFrom } from "../../src/engine/options.ts";
import { loadConfig } from "../../src/models/config.ts";

test("--device and --gpu-memory-utilization are parsed and checked", () => {
  const o = engineOptionsFrom({ backend: "cuda", device: "1", gpuMemoryUtilization: 0.5 });
  assert.equal(o.backend, "cuda");
  assert.equal(o.device, 1);
  assert.equal(o.gpuMemoryUtilization, 0.5);
  // vLLM's spelling picks the backend
  assert.deepEqual(pickDevice({ device: "cuda" }), ["cuda", 0]);
  assert.deepEqual(pickDevice({ device: "cuda:2" }), ["cuda", 2]);
  assert.deepEqual(pickDevice({ device: "cpu" }), ["cpu", 0]);
  assert.deepEqual(pickDevice({}), ["auto", 0]);
  assert.deepEqual(pickDevice({ backend: "cuda", device: "cuda:1" }), ["cuda", 1]);
  assert.throws(() => engineOptionsFrom({ backend: "cpu", device: "cuda" }), /--device cuda contradicts --backend cpu/);
  assert.throws(() => engineOptionsFrom({ device: "tpu" }), /--device must be cuda, cuda:N, cpu/);
  assert.throws(() => engineOptionsFrom({ device: "cpu:1" }), /takes no number/);
  assert.throws(() => engineOptionsFrom({ gpuMemoryUtilization: 1.5 }), /--gpu-memory-utilization must be in \(0, 1\]/);
  assert.throws(() => engineOptionsFrom({ gpuMemoryUtilization: "x" }), /--gpu-memory-utilization/);
  assert.throws(() => engineOptionsFrom({ backend: "tpu" }), /--backend must be one of auto, cpu, reference, cuda/);
});

test("the KV pool on cuda counts the target and the draft model against free device memory", () => {
  const target = loadConfig("models/tiny-llama");
  const draft = loadConfig("models/tiny-llama-draft");
  const free = 4 * 2 ** 30;
  const fake = { freeMemoryBytes: () => free } as unknown as CudaBackend;
  const input = {
    model: target,
    draft: null,
    storage: "bf16" as const,
    kvDtype: "f32" as const,
    blockSize: 16,
    maxNumBatchedTokens: 2048,
    maxNumSeqs: 64,
    utilization: 0.9,
  };
  const alone = planCudaKv(fake, input);
  const perBlock = kvBytesPerBlock(target.numLayers, target.numKvHeads, target.headDim, 16, "f32");
  assert.ok(alone.numBlocks > 1000, alone.explain);
  assert.equal(alone.numBlocks, Math.floor(alone.budgetBytes / perBlock));
  const both = planCudaKv(fake, { ...input, draft });
  assert.ok(both.budgetBytes < alone.budgetBytes, "the draft's weights and activations come off the budget");
  const perBlockBoth = perBlock + kvBytesPerBlock(draft.numLayers, draft.numKvHeads, draft.headDim, 16, "f32");
  assert.equal(both.numBlocks, Math.floor(both.budgetBytes / perBlockBoth));
  // too little memory: zero blocks, which buildCore refuses with the plan in the message
  assert.equal(planCudaKv({ freeMemoryBytes: () => 2 ** 20 } as unknown as CudaBackend, input).numBlocks, 0);
  assert.equal(
    planKvMemory({ freeBytes: 0, utilization: 1, weightBytes: 0, activationBytes: 0, bytesPerBlock: 1 }).numBlocks,
    0,
  );
});

test("--backend cuda without the addon or a device fails with the reason, never falls back silently", async (t) => {
  const probe = CudaBackend.tryLoad();
  if ("backend" in probe) {
    probe.backend.dispose();
    return t.skip("a usable GPU is present");
  }
  await assert.rejects(buildCore({ ...DEFAULT_ENGINE_OPTIONS, backend: "cuda" }), (e: Error) => {
    assert.equal(e.message, `the cuda backend is not available: ${probe.error}`);
    return true;
  });
});

function pickDevice(o: Record<string, unknown>): [string, number] {
  const r = engineOptionsFrom(o);
  return [r.backend, r.device];
}
