/**
 * Loading the CUDA backend where there may be no GPU: tryLoad never throws and says why in one line; when
 * the addon is built, its host-side weight packing (run with no GPU) is bit-exact with src/formats/quant.ts
 * and dtype.ts — the layouts the GPU kernels read.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadCudaAddon, type NativeCudaModule, SRC_DTYPE, STORAGE } from "../../src/backends/cuda/addon.ts";
import { CudaBackend } from "../../src/backends/cuda/cuda-backend.ts";
import { f32ToBf16 } from "../../src/formats/dtype.ts";
import { f32ToF16, QGROUP, quantizeInt4, quantizeInt8 } from "../../src/formats/quant.ts";
import { randn } from "../backends/conformance.ts";

test("tryLoad returns the backend or a one-line reason, never throws", () => {
  const r = CudaBackend.tryLoad();
  if ("backend" in r) {
    assert.match(r.backend.describe(), /^cuda: /);
    r.backend.dispose();
    return;
  }
  assert.ok(!r.error.includes("\n"), r.error);
  assert.match(
    r.error,
    /CUDA addon not built|CUDA driver|CUDA device|cuBLAS not found|CUDA unavailable|failed to load/,
  );
});

test("a nonexistent device is refused clearly", () => {
  const r = CudaBackend.tryLoad({ device: 99 });
  assert.ok("error" in r);
  assert.ok(!r.error.includes("\n"));
});

/** The real addon, else the CPU-emulation build (its host-side packing is the same code). */
function hostAddon(): NativeCudaModule | { error: string } {
  const real = loadCudaAddon();
  if (!("error" in real)) return real;
  const emu = fileURLToPath(new URL("../../build/cuda-emu/loom_cuda.node", import.meta.url));
  return existsSync(emu) ? (createRequire(import.meta.url)(emu) as NativeCudaModule) : real;
}
const mod = hostAddon();
const skip = "error" in mod ? `CUDA addon not built: ${mod.error}` : false;

describe("CUDA addon without a GPU: host-side packing", { skip }, () => {
  const m = mod as Exclude<typeof mod, { error: string }>;
  const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const SHAPES: [number, number][] = [
    [3, 7],
    [5, 33],
    [4, 64],
    [2, 100],
  ];

  test("build info and the reasons it gives without a device", () => {
    const info = m.buildInfo();
    assert.ok(info.cudaRuntime >= 12000, JSON.stringify(info));
    assert.match(info.archs, /sm_\d+|emulated/);
    const why = m.deviceUnavailableReason(0);
    assert.equal(typeof why, "string");
    const blas = m.cublasStatus();
    assert.ok(blas.ok || /cuBLAS not found/.test(blas.error), JSON.stringify(blas));
  });

  test("f32 / bf16 / f16 rows are padded to 32 columns, converted with round-to-nearest-even", () => {
    for (const [rows, cols] of SHAPES) {
      const v = randn(rows * cols, rows * 31 + cols, 2);
      v[0] = 65520; // rounds to f16 infinity
      v[1] = 1e-8; // f16 subnormal range
      const kp = Math.ceil(cols / QGROUP) * QGROUP;
      const f32 = m.packWeight(bytes(v), SRC_DTYPE.f32, rows, cols, STORAGE.f32);
      const bf = m.packWeight(bytes(v), SRC_DTYPE.f32, rows, cols, STORAGE.bf16);
      const hf = m.packWeight(bytes(v), SRC_DTYPE.f32, rows, cols, STORAGE.f16);
      assert.equal(f32.kp, kp);
      const f = new Float32Array(f32.data.buffer, f32.data.byteOffset, rows * kp);
      const b = new Uint16Array(bf.data.buffer, bf.data.byteOffset, rows * kp);
      const h = new Uint16Array(hf.data.buffer, hf.data.byteOffset, rows * kp);
      for (let r = 0; r < rows; r++) {
        for (let k = 0; k < kp; k++) {
          const x = k < cols ? v[r * cols + k] : 0;
          assert.equal(f[r * kp + k], x);
          assert.equal(b[r * kp + k], f32ToBf16(x), `bf16 [${r},${k}]`);
          assert.equal(h[r * kp + k], f32ToF16(x), `f16 [${r},${k}]`);
        }
      }
    }
  });

  test("int8: codes and scales equal quant.ts quantizeInt8 (zero padding)", () => {
    for (const [rows, cols] of SHAPES) {
      const v = randn(rows * cols, rows + 7 * cols, 1);
      for (let i = 0; i < v.length; i += 13) v[i] *= 9;
      const p = m.packWeight(bytes(v), SRC_DTYPE.f32, rows, cols, STORAGE.int8);
      const q = quantizeInt8(v, rows, cols);
      const kp = p.kp;
      const codes = new Int8Array(p.data.buffer, p.data.byteOffset, rows * kp);
      assert.deepEqual(Array.from(p.scales), Array.from(q.scales));
      for (let r = 0; r < rows; r++) {
        for (let k = 0; k < kp; k++) assert.equal(codes[r * kp + k], k < cols ? q.q[r * cols + k] : 0);
      }
      const again = m.packQuantized(STORAGE.int8, rows, cols, q.q, q.scales);
      assert.deepEqual(again.data, p.data);
    }
  });

  test("int4: nibbles (element j low, j+16 high) and (d, min) equal quant.ts quantizeInt4", () => {
    for (const [rows, cols] of SHAPES) {
      const v = randn(rows * cols, 3 * rows + cols, 1);
      for (let j = 0; j < Math.min(cols, QGROUP); j++) v[j] = 0.5; // a constant group: d = 0
      const p = m.packWeight(bytes(v), SRC_DTYPE.f32, rows, cols, STORAGE.int4);
      const q = quantizeInt4(v, rows, cols);
      assert.deepEqual(Array.from(p.scales), Array.from(q.scales));
      const half = p.kp / 2;
      for (let r = 0; r < rows; r++) {
        for (let k = 0; k < p.kp; k++) {
          const g = Math.floor(k / QGROUP);
          const j = k % QGROUP;
          const byte = p.data[r * half + g * 16 + (j & 15)];
          const code = j < 16 ? byte & 15 : byte >> 4;
          assert.equal(code, k < cols ? q.q[r * cols + k] : 0, `[${r},${k}]`);
        }
      }
      const again = m.packQuantized(STORAGE.int4, rows, cols, q.q, q.scales);
      assert.deepEqual(again.data, p.data);
    }
  });

  test("bf16 checkpoints stored as bf16 are copied bit for bit; vectors are f32", () => {
    const words = Uint16Array.from([0x3f80, 0xbf80, 0x7fc0, 0x0001, 0x4049]);
    const p = m.packWeight(new Uint8Array(words.buffer), SRC_DTYPE.bf16, 1, 5, STORAGE.bf16);
    assert.deepEqual(Array.from(new Uint16Array(p.data.buffer, p.data.byteOffset, 5)), Array.from(words));
    const vec = m.packWeight(new Uint8Array(words.buffer), SRC_DTYPE.bf16, 5, 0, STORAGE.bf16);
    assert.deepEqual(Array.from(new Float32Array(vec.data.buffer, vec.data.byteOffset, 2)), [1, -1]);
  });
});
