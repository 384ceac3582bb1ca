/**
 * The conformance suite on the CPU emulation of the CUDA kernels (emulated.test.ts) with the default
 * matmul routing: bf16 matmuls of ≥ 9 rows through the (emulated) cuBLAS GemmEx on bf16-rounded
 * activations, with conformance-tc.test.ts's matmul tolerance (1e-2).
 */
import { existsSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const path =
  process.env.LOOM_CUDA_EMU_ADDON ?? fileURLToPath(new URL("../../build/cuda-emu/loom_cuda.node", import.meta.url));

if (!existsSync(path)) {
  test("CUDA kernels under CPU emulation (tensor-core routing)", {
    skip: `emulated addon not built: ${path}`,
  }, () => {});
} else {
  process.env.LOOM_CUDA_ADDON = path;
  const { CudaBackend } = await import("../../src/backends/cuda/cuda-backend.ts");
  const { runConformance } = await import("../backends/conformance.ts");
  runConformance("cuda-emulated (bf16 GEMMs through cuBLAS)", () => new CudaBackend(), { tol: { matmul: 1e-2 } });
}
