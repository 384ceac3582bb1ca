/**
 * The conformance suite with the default matmul routing: bf16 weights with ≥ 2 rows go through cuBLAS on
 * tensor cores with activations rounded to bf16 (relative error ≤ 2⁻⁹ per activation, so about 1e-3 of
 * the output's range; the tolerance is 1e-2). Every other op keeps the suite's own tolerances.
 */
import { test } from "node:test";
import { CudaBackend } from "../../src/backends/cuda/cuda-backend.ts";
import { runConformance } from "../backends/conformance.ts";

/** Tolerances of the tensor-core run (only matmul differs from the defaults). */
const BF16_TOL = { matmul: 1e-2 };

const probe = CudaBackend.tryLoad();
if ("error" in probe) {
  test("CUDA backend conformance (tensor cores)", { skip: `CUDA backend unavailable: ${probe.error}` }, () => {});
} else {
  const hasCublas = probe.backend.hasCublas;
  probe.backend.dispose();
  if (!hasCublas) test("conformance: cuda (tensor cores)", { skip: "cuBLAS not loaded" }, () => {});
  else runConformance("cuda (bf16 tensor-core GEMMs)", () => new CudaBackend(), { tol: BF16_TOL });
}
