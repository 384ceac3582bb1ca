/**
 * The quantized weight formats of the native CPU backend, specified in TypeScript. This file is the
 * spec and the tests' oracle: native/cpu/quant.cc does exactly this arithmetic (same double divisions,
 * same rounding), so quantize → dequantize here equals what the native kernels multiply with.
 *
 * Rows of K values are split into groups of 32 (the last group of a row may be partial: it is quantized
 * from its real values only and padded with zeros in storage).
 *
 *   int8 (like Q8_0):                   d = f16(fround(amax / 127)) (at most 65504);
 *                                       q = clamp(roundHalfUp(x / d), -127, 127); x̂ = fround(q · d)
 *   int4 (like Q4_1, f32 scale and min): m = min x, d = fround((max x − m) / 15);
 *                                       q = clamp(roundHalfUp((x − m) / d), 0, 15)
 *                                       x̂ = fround(fround(q · d) + m)
 *   (d = 0 → every q = 0.) Divisions are done in double, as JS does; C++ does the same in double.
 *
 * CPU storage per group: int8 = 32 bytes + an f16 scale (1.0625 B/weight, Q8_0's size); int4 = 16 bytes +
 * f32 d and m (0.75 B/weight); each row's scales follow its codes. In the int4 byte j of a group holds
 * element j in its low nibble and element j+16 in its high nibble.
 * The int8 KV cache uses the int8 rule with one group per (token, kv head) of headDim values, with the
 * scale left in f32 (it is stored as f32 per row: rounding it would only lose precision).
 */
import type { StorageDType } from "../backends/backend.ts";
import { f16ToF32 } from "./dtype.ts";

export const QGROUP = 32;

/** floor, then up when the fraction is ≥ 0.5 (defined explicitly so C++ can do exactly the same). */
export function roundHalfUp(v: number): number {
  const f = Math.floor(v);
  return v - f >= 0.5 ? f + 1 : f;
}

export interface QuantizedMatrix {
  kind: "int8" | "int4";
  rows: number;
  cols: number;
  /** int8: one value per element (row-major, unpadded); int4: the 0..15 codes, one per element. */
  q: Int8Array | Uint8Array;
  /** int8: d per (row, group); int4: d, m interleaved per (row, group). */
  scales: Float32Array;
}

const groupsOf = (cols: number) => Math.ceil(cols / QGROUP);

/** A weight group's int8 scale rounded to f16 (as Q8_0 stores it), saturating at f16's largest 65504. */
export function int8WeightScale(d: number): number {
  return Math.min(f16ToF32(f32ToF16(d)), 65504);
}

/**
 * Symmetric int8 quantization of n values x[off..off+n) with one scale; returns d. `weight`: the scale is
 * rounded to f16 (int8WeightScale); the int8 KV cache keeps it in f32.
 */
export function quantizeInt8Group(
  x: ArrayLike<number>,
  off: number,
  n: number,
  q: Int8Array,
  qOff: number,
  weight = false,
): number {
  let amax = 0;
  for (let i = 0; i < n; i++) amax = Math.max(amax, Math.abs(x[off + i]));
  let d = Math.fround(amax / 127);
  if (weight) d = int8WeightScale(d);
  for (let i = 0; i < n; i++) {
    q[qOff + i] = d === 0 ? 0 : Math.min(127, Math.max(-127, roundHalfUp(x[off + i] / d)));
  }
  return d;
}

export function quantizeInt8(values: Float32Array, rows: number, cols: number): QuantizedMatrix {
  const G = groupsOf(cols);
  const q = new Int8Array(rows * cols);
  const scales = new Float32Array(rows * G);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < G; g++) {
      const off = r * cols + g * QGROUP;
      const n = Math.min(QGROUP, cols - g * QGROUP);
      scales[r * G + g] = quantizeInt8Group(values, off, n, q, off, true);
    }
  }
  return { kind: "int8", rows, cols, q, scales };
}

export function quantizeInt4(values: Float32Array, rows: number, cols: number): QuantizedMatrix {
  const G = groupsOf(cols);
  const q = new Uint8Array(rows * cols);
  const scales = new Float32Array(rows * G * 2);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < G; g++) {
      const off = r * cols + g * QGROUP;
      const n = Math.min(QGROUP, cols - g * QGROUP);
      let mn = values[off];
      let mx = values[off];
      for (let i = 1; i < n; i++) {
        mn = Math.min(mn, values[off + i]);
        mx = Math.max(mx, values[off + i]);
      }
      const d = Math.fround((mx - mn) / 15);
      for (let i = 0; i < n; i++) {
        q[off + i] = d === 0 ? 0 : Math.min(15, Math.max(0, roundHalfUp((values[off + i] - mn) / d)));
      }
      scales[2 * (r * G + g)] = d;
      scales[2 * (r * G + g) + 1] = mn;
    }
  }
  return { kind: "int4", rows, cols, q, scales };
}

export function dequantize(m: QuantizedMatrix): Float32Array {
  const { rows, cols, q, scales } = m;
  const G = groupsOf(cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const g = r * G + Math.floor(c / QGROUP);
      const v = q[r * cols + c];
      out[r * cols + c] =
        m.kind === "int8"
          ? Math.fround(v * scales[g])
          : Math.fround(Math.fround(v * scales[2 * g]) + scales[2 * g + 1]);
    }
  }
  return out;
}

/** quantize → dequantize: the f32 values a quantized matmul really multiplies with. */
export function fakeQuantize(values: Float32Array, rows: number, cols: number, kind: "int8" | "int4"): Float32Array {
  return dequantize(kind === "int8" ? quantizeInt8(values, rows, cols) : quantizeInt4(values, rows, cols));
}

/** Bytes the CUDA backend stores for a [rows, cols] matrix (rows padded to a multiple of 32 columns; int8/int4
 * codes, then f32 scales). */
export function storageBytes(storage: StorageDType, rows: number, cols: number): number {
  const kp = groupsOf(cols) * QGROUP;
  switch (storage) {
    case "f32":
      return rows * kp * 4;
    case "f16":
    case "bf16":
      return rows * kp * 2;
    case "int8":
      return rows * kp + rows * (kp / QGROUP) * 4;
    case "int4":
      return rows * (kp / 2) + rows * (kp / QGROUP) * 8;
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → IEEE half bits, round to nearest even (what F16C's vcvtps2ph does). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a >= 0x7f800000) return sign | 0x7c00 | (a > 0x7f800000 ? 0x200 : 0);
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a < 0x38800000) {
    if (a < 0x33000000) return sign;
    const e = a >>> 23;
    const m = (a & 0x7fffff) | 0x800000;
    const shift = 126 - e;
    let q = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && q & 1)) q++;
    return sign | q;
  }
  const r = a + 0xfff + ((a >>> 13) & 1);
  return sign | ((r - 0x38000000) >>> 13);
}
