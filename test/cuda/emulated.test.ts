/**
 * The CUDA backend's kernels on a CPU: the same kernel source built against native/cuda/emu (a CUDA
 * runtime emulation: fibers for threads, barriers and warp shuffles as switch points, a CPU cuBLAS) by
 * `node scripts/build-cuda.mjs --emulate`, run through the conformance suite with both matmul routings,
 * plus the device-feature tests (emulated-tc.test.ts: the tensor-core routing with its bf16 tolerance). This checks the kernels' indexing, reductions, online softmax, split-K
 * plan, quantization formats, cuBLAS argument mapping, step packing and CUDA graph capture/replay — not
 * timing, memory-model or occupancy behaviour, which only a GPU shows. Skipped when the emulated addon
 * is not built (LOOM_CUDA_EMU_ADDON overrides its path).
 */
import { existsSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const path =
  process.env.LOOM_CUDA_EMU_ADDON ?? fileURLToPath(new URL("../../build/cuda-emu/loom_cuda.node", import.meta.url));

if (!existsSync(path)) {
  test("CUDA kernels under CPU emulation", {
    skip: `emulated addon not built (node scripts/build-cuda.mjs --emulate): ${path}`,
  }, () => {});
} else {
  process.env.LOOM_CUDA_ADDON = path;
  const { CudaBackend } = await import("../../src/backends/cuda/cuda-backend.ts");
  const { runConformance } = await import("../backends/conformance.ts");
  const { runDeviceSuite } = await import("./device-suite.ts");
  runConformance(
    "cuda-emulated (f32 SIMT matmuls)",
    () => new CudaBackend({ tensorCoreMinRows: Number.POSITIVE_INFINITY }),
  );
  runConformance("cuda-emulated (no cuBLAS)", () => new CudaBackend({ cublas: "off" }));
  runDeviceSuite("emulated", { light: true });
}
