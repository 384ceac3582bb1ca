/**
 * The CUDA backend against the reference backend (test/backends/conformance.ts), run on a GPU.
 * Here every matmul takes the exact f32 path (GEMV / tiled SIMT kernels; tensorCoreMinRows: Infinity), so
 * the suite's default tolerances apply unchanged; conformance-tc.test.ts runs the same suite with the bf16
 * tensor-core GEMMs on. Skipped with the reason when CudaBackend.tryLoad() fails (no GPU, driver, cuBLAS
 * or addon).
 */
import { test } from "node:test";
import { CudaBackend } from "../../src/backends/cuda/cuda-backend.ts";
import { runConformance } from "../backends/conformance.ts";

const probe = CudaBackend.tryLoad();
if ("error" in probe) {
  test("CUDA backend conformance", { skip: `CUDA backend unavailable: ${probe.error}` }, () => {});
} else {
  probe.backend.dispose();
  runConformance("cuda (f32 SIMT matmuls)", () => new CudaBackend({ tensorCoreMinRows: Number.POSITIVE_INFINITY }));
  runConformance("cuda (no cuBLAS: tiled SIMT for every storage)", () => new CudaBackend({ cublas: "off" }));
}
