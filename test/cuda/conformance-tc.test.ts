/**
 * The conformance suite with the default matmul routing: bf16 weights with ≥ 9 rows go through cuBLAS on
 * tensor cores with activations rounded to bf16 (relative error ≤ 2⁻⁹ per activation, so about 1e-3 of
 * the output's range; the tolerance is 1e-2). Every other op keeps the suite's own tolerances.
 * Its own file (its own process) because the tolerance override must not leak into the exact suite.
 */
import { test } from "node:test";
import type { Backend } from "../../src/backends/backend.ts";
import { CudaBackend } from "../../src/backends/cuda/cuda-backend.ts";
import { runConformance, TOL } from "../backends/conformance.ts";

/** Tolerances of the tensor-core run (only matmul differs from the defaults). */
export const BF16_TOL = { ...TOL, matmul: 1e-2 };

type Tolerances = { -readonly [K in keyof typeof TOL]: number };
const run = runConformance as (name: string, make: () => Backend, tol?: Partial<Tolerances>) => void;

const probe = CudaBackend.tryLoad();
if ("error" in probe) {
  test("CUDA backend conformance (tensor cores)", { skip: `CUDA backend unavailable: ${probe.error}` }, () => {});
} else {
  const hasCublas = probe.backend.hasCublas;
  probe.backend.dispose();
  // Until runConformance takes tolerances (a third parameter), loosen this process's copy of TOL.
  if (run.length < 3) Object.assign(TOL as Tolerances, BF16_TOL);
  if (!hasCublas) test("conformance: cuda (tensor cores)", { skip: "cuBLAS not loaded" }, () => {});
  else run("cuda (bf16 tensor-core GEMMs)", () => new CudaBackend(), BF16_TOL);
}
