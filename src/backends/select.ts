/**
 * Picks the backend for `--backend`: "auto" takes the native CPU backend wherever its addon loads and
 * falls back to the reference backend with a one-line warning saying why; "cuda" (only when named) loads
 * the CUDA addon and device or fails with the reason.
 */
import type { Backend } from "./backend.ts";
import { ReferenceBackend } from "./reference/reference-backend.ts";

export interface BackendChoice {
  backend: Backend;
  /** Why the preferred backend could not be used, when it could not. */
  warning: string | null;
}

export async function selectBackend(
  name: "auto" | "cpu" | "reference" | "cuda",
  threads?: number,
  device = 0,
): Promise<BackendChoice> {
  if (name === "reference") return { backend: new ReferenceBackend(), warning: null };
  if (name === "cuda") {
    // Only on request: `auto` stays on the CPU (the CUDA backend is new; see native/cuda/README.md).
    const { CudaBackend } = await import("./cuda/cuda-backend.ts");
    const loaded = CudaBackend.tryLoad({ device, cublas: "optional" });
    if ("error" in loaded) throw new Error(`the cuda backend is not available: ${loaded.error}`);
    return { backend: loaded.backend, warning: null };
  }
  let reason: string;
  try {
    const { CpuBackend } = await import("./cpu/cpu-backend.ts");
    const loaded = CpuBackend.tryLoad({ threads });
    if ("backend" in loaded) return { backend: loaded.backend, warning: null };
    reason = loaded.error;
  } catch (e) {
    reason = (e as Error).message.split("\n")[0];
  }
  if (name === "cpu") throw new Error(`the cpu backend is not available: ${reason}`);
  return {
    backend: new ReferenceBackend(),
    warning: `native cpu backend unavailable (${reason}); using the slow reference backend`,
  };
}
