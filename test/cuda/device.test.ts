/**
 * CUDA-only features on a GPU (test/cuda/device-suite.ts). Skipped with the reason when
 * CudaBackend.tryLoad() fails.
 */
import { test } from "node:test";
import { CudaBackend } from "../../src/backends/cuda/cuda-backend.ts";
import { runDeviceSuite } from "./device-suite.ts";

const probe = CudaBackend.tryLoad();
if ("error" in probe) {
  test("cuda device features", { skip: `CUDA backend unavailable: ${probe.error}` }, () => {});
} else {
  probe.backend.dispose();
  runDeviceSuite("gpu");
}
