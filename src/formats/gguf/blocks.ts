/**
 * ggml block formats: decoding to float32, llama.cpp's reference quantizers for Q8_0 and Q4_0, and lossless
 * repacking of Q8_0 / Q4_0 into the CPU backend's int8 / int4 formats (src/formats/quant.ts).
 *
 * Block layouts (little-endian; d, dmin are IEEE halves; QK_K = 256):
 *
 *   Q8_0  34 B / 32:  d | qs[32] int8                     x[j] = qs[j]·d
 *   Q4_0  18 B / 32:  d | qs[16]                          x[j] = ((qs[j] & 15) − 8)·d,  x[j+16] = ((qs[j] >> 4) − 8)·d
 *   Q4_K 144 B / 256: d | dmin | scales[12] | qs[128]     8 sub-blocks of 32 with 6-bit scale sc and min m:
 *                                                         x = d·sc·q − dmin·m, q a nibble; sub-blocks 2i, 2i+1
 *                                                         take the low, high nibbles of qs[32i .. 32i+32)
 *       scales[12]: j < 4: sc = s[j] & 63, m = s[j+4] & 63
 *                   j ≥ 4: sc = (s[j+4] & 15) | (s[j−4] >> 6) << 4,  m = (s[j+4] >> 4) | (s[j] >> 6) << 4
 *   Q6_K 210 B / 256: ql[128] | qh[64] | scales[16] int8 | d
 *       per half n (128 values; ql += 64n, qh += 32n, scales += 8n), l in 0..31, is = l / 16:
 *         x[l]    = d·sc[is]  ·((ql[l]    & 15 | (qh[l]      & 3) << 4) − 32)
 *         x[l+32] = d·sc[is+2]·((ql[l+32] & 15 | (qh[l] >> 2 & 3) << 4) − 32)
 *         x[l+64] = d·sc[is+4]·((ql[l]    >> 4 | (qh[l] >> 4 & 3) << 4) − 32)
 *         x[l+96] = d·sc[is+6]·((ql[l+32] >> 4 | (qh[l] >> 6 & 3) << 4) − 32)
 *
 * Arithmetic is float32 in the order ggml's reference C uses (Math.fround after each operation).
 */
import { f16ToF32 } from "../dtype.ts";
import { f32ToF16, type QuantizedMatrix } from "../quant.ts";
import { GgmlType, ggmlTypeName } from "./types.ts";

let f16Table: Float32Array | null = null;
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

const u16 = (b: Uint8Array, i: number) => b[i] | (b[i + 1] << 8);
const fr = Math.fround;

/** The ggml types `dequantize` handles. */
export const DECODABLE_TYPES: readonly number[] = [
  GgmlType.F32,
  GgmlType.F16,
  GgmlType.BF16,
  GgmlType.Q8_0,
  GgmlType.Q4_0,
  GgmlType.Q4_K,
  GgmlType.Q6_K,
];

/** Decodes `n` elements of ggml `type` from `bytes` (which must hold exactly their blocks). */
export function dequantize(type: number, bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const H = halfTable();
  switch (type) {
    case GgmlType.F32:
      new Uint8Array(out.buffer).set(bytes.subarray(0, n * 4));
      return out;
    case GgmlType.F16:
      for (let i = 0; i < n; i++) out[i] = H[u16(bytes, 2 * i)];
      return out;
    case GgmlType.BF16: {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = u16(bytes, 2 * i) << 16;
      return out;
    }
    case GgmlType.Q8_0:
      for (let b = 0; b < n / 32; b++) {
        const o = b * 34;
        const d = H[u16(bytes, o)];
        for (let j = 0; j < 32; j++) out[b * 32 + j] = fr(((bytes[o + 2 + j] << 24) >> 24) * d);
      }
      return out;
    case GgmlType.Q4_0:
      for (let b = 0; b < n / 32; b++) {
        const o = b * 18;
        const d = H[u16(bytes, o)];
        for (let j = 0; j < 16; j++) {
          const q = bytes[o + 2 + j];
          out[b * 32 + j] = fr(((q & 15) - 8) * d);
          out[b * 32 + j + 16] = fr(((q >> 4) - 8) * d);
        }
      }
      return out;
    case GgmlType.Q4_K:
      for (let b = 0; b < n / 256; b++) dequantQ4KBlock(bytes, b * 144, out, b * 256, H);
      return out;
    case GgmlType.Q6_K:
      for (let b = 0; b < n / 256; b++) dequantQ6KBlock(bytes, b * 210, out, b * 256, H);
      return out;
    default:
      throw new Error(`cannot decode ggml type ${ggmlTypeName(type)}`);
  }
}

/** The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block's 12 scale bytes at `s`. */
export function scaleMinK4(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [b[s + j] & 63, b[s + j + 4] & 63];
  return [(b[s + j + 4] & 15) | ((b[s + j - 4] >> 6) << 4), (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4)];
}

function dequantQ4KBlock(b: Uint8Array, o: number, y: Float32Array, yo: number, H: Float32Array): void {
  const d = H[u16(b, o)];
  const dmin = H[u16(b, o + 2)];
  const s = o + 4;
  let q = o + 16;
  let is = 0;
  for (let j = 0; j < 256; j += 64) {
    const [sc1, m1] = scaleMinK4(b, s, is);
    const [sc2, m2] = scaleMinK4(b, s, is + 1);
    const d1 = fr(d * sc1);
    const mm1 = fr(dmin * m1);
    const d2 = fr(d * sc2);
    const mm2 = fr(dmin * m2);
    for (let l = 0; l < 32; l++) y[yo + j + l] = fr(fr(d1 * (b[q + l] & 15)) - mm1);
    for (let l = 0; l < 32; l++) y[yo + j + 32 + l] = fr(fr(d2 * (b[q + l] >> 4)) - mm2);
    q += 32;
    is += 2;
  }
}

function dequantQ6KBlock(b: Uint8Array, o: number, y: Float32Array, yo: number, H: Float32Array): void {
  const d = H[u16(b, o + 208)];
  for (let half = 0; half < 2; half++) {
    const ql = o + 64 * half;
    const qh = o + 128 + 32 * half;
    const sc = o + 192 + 8 * half;
    const yb = yo + 128 * half;
    for (let l = 0; l < 32; l++) {
      const is = l >> 4;
      const h = b[qh + l];
      const q1 = ((b[ql + l] & 15) | ((h & 3) << 4)) - 32;
      const q2 = ((b[ql + l + 32] & 15) | (((h >> 2) & 3) << 4)) - 32;
      const q3 = ((b[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
      const q4 = ((b[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
      const s = (k: number) => (b[sc + is + k] << 24) >> 24;
      y[yb + l] = fr(fr(d * s(0)) * q1);
      y[yb + l + 32] = fr(fr(d * s(2)) * q2);
      y[yb + l + 64] = fr(fr(d * s(4)) * q3);
      y[yb + l + 96] = fr(fr(d * s(6)) * q4);
    }
  }
}

/** C's roundf: half away from zero. */
function roundf(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/** llama.cpp's quantize_row_q8_0_ref (n a multiple of 32). */
export function quantizeQ8_0(x: ArrayLike<number>, n: number): Uint8Array {
  const out = new Uint8Array((n / 32) * 34);
  for (let b = 0; b < n / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = fr(amax / 127);
    const id = d !== 0 ? fr(1 / d) : 0;
    const h = f32ToF16(d);
    const o = b * 34;
    out[o] = h & 0xff;
    out[o + 1] = h >> 8;
    for (let j = 0; j < 32; j++) out[o + 2 + j] = roundf(fr(x[b * 32 + j] * id)) & 0xff;
  }
  return out;
}

/** llama.cpp's quantize_row_q4_0_ref (n a multiple of 32). */
export function quantizeQ4_0(x: ArrayLike<number>, n: number): Uint8Array {
  const out = new Uint8Array((n / 32) * 18);
  for (let b = 0; b < n / 32; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -8);
    const id = d !== 0 ? fr(1 / d) : 0;
    const h = f32ToF16(d);
    const o = b * 18;
    out[o] = h & 0xff;
    out[o + 1] = h >> 8;
    for (let j = 0; j < 16; j++) {
      const x0 = fr(x[b * 32 + j] * id);
      const x1 = fr(x[b * 32 + 16 + j] * id);
      const q0 = Math.min(15, Math.trunc(fr(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(fr(x1 + 8.5)));
      out[o + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

/** float32 values → F16 bytes (round to nearest even). */
export function encodeF16(x: ArrayLike<number>): Uint8Array {
  const w = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) w[i] = f32ToF16(x[i]);
  return new Uint8Array(w.buffer);
}

/**
 * Q8_0 → the CPU backend's int8 (quant.ts): the same codes, the f16 scale widened to f32. Exact: both
 * dequantize to fround(q·d), so the backend multiplies with the very values llama.cpp does.
 */
export function q8_0ToInt8(bytes: Uint8Array, rows: number, cols: number): QuantizedMatrix {
  const H = halfTable();
  const G = cols / 32;
  const q = new Int8Array(rows * cols);
  const scales = new Float32Array(rows * G);
  for (let b = 0; b < rows * G; b++) {
    const o = b * 34;
    scales[b] = H[u16(bytes, o)];
    for (let j = 0; j < 32; j++) q[b * 32 + j] = (bytes[o + 2 + j] << 24) >> 24;
  }
  return { kind: "int8", rows, cols, q, scales };
}

/**
 * Q4_0 → the CPU backend's int4 (quant.ts: x̂ = fround(fround(q·d) + m)): codes unchanged, d widened, m = −8d.
 * Exact: q·d has at most 4 + 11 significant bits and −8d is a power-of-two multiple, so every step is exact
 * and x̂ = (q − 8)·d, what ggml computes.
 */
export function q4_0ToInt4(bytes: Uint8Array, rows: number, cols: number): QuantizedMatrix {
  const H = halfTable();
  const G = cols / 32;
  const q = new Uint8Array(rows * cols);
  const scales = new Float32Array(rows * G * 2);
  for (let b = 0; b < rows * G; b++) {
    const o = b * 18;
    const d = H[u16(bytes, o)];
    scales[2 * b] = d;
    scales[2 * b + 1] = fr(-8 * d);
    for (let j = 0; j < 16; j++) {
      const v = bytes[o + 2 + j];
      q[b * 32 + j] = v & 15;
      q[b * 32 + j + 16] = v >> 4;
    }
  }
  return { kind: "int4", rows, cols, q, scales };
}

/**
 * A simple Q4_K encoder (per 32-value sub-block: min/max affine, 6-bit scales and mins relative to the
 * block's d and dmin). Not llama.cpp's iterative search, so its error is somewhat larger; used by tests
 * and the llama.cpp cross-check to produce valid Q4_K data. n must be a multiple of 256.
 */
export function quantizeQ4K(x: ArrayLike<number>, n: number): Uint8Array {
  const out = new Uint8Array((n / 256) * 144);
  const H = halfTable();
  for (let b = 0; b < n / 256; b++) {
    const scale = new Float64Array(8);
    const min = new Float64Array(8);
    for (let s = 0; s < 8; s++) {
      let lo = 0;
      let hi = 0;
      for (let j = 0; j < 32; j++) {
        const v = x[b * 256 + s * 32 + j];
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      min[s] = -lo; // ≥ 0: x ≈ scale·q − min
      scale[s] = (hi - lo) / 15;
    }
    const dh = f32ToF16(Math.max(...scale) / 63);
    const mh = f32ToF16(Math.max(...min) / 63);
    const d = H[dh];
    const dmin = H[mh];
    const sc = Array.from(scale, (v) => (d > 0 ? Math.min(63, Math.round(v / d)) : 0));
    const m = Array.from(min, (v) => (dmin > 0 ? Math.min(63, Math.round(v / dmin)) : 0));
    const o = b * 144;
    out[o] = dh & 0xff;
    out[o + 1] = dh >> 8;
    out[o + 2] = mh & 0xff;
    out[o + 3] = mh >> 8;
    for (let j = 0; j < 8; j++) {
      if (j < 4) {
        out[o + 4 + j] |= sc[j];
        out[o + 8 + j] |= m[j];
      } else {
        out[o + 8 + j] = (sc[j] & 15) | ((m[j] & 15) << 4);
        out[o + j] |= (sc[j] >> 4) << 6;
        out[o + 4 + j] |= (m[j] >> 4) << 6;
      }
    }
    for (let e = 0; e < 256; e++) {
      const s = e >> 5;
      const step = fr(d * sc[s]);
      const q = step > 0 ? Math.min(15, Math.max(0, Math.round((x[b * 256 + e] + fr(dmin * m[s])) / step))) : 0;
      const at = o + 16 + 32 * (e >> 6) + (e & 31);
      out[at] |= (e & 63) < 32 ? q : q << 4;
    }
  }
  return out;
}

/** A simple Q6_K encoder (16-value sub-blocks, int8 scales relative to d); n a multiple of 256. */
export function quantizeQ6K(x: ArrayLike<number>, n: number): Uint8Array {
  const out = new Uint8Array((n / 256) * 210);
  const H = halfTable();
  for (let b = 0; b < n / 256; b++) {
    const scale = new Float64Array(16);
    for (let s = 0; s < 16; s++) {
      let amax = 0;
      for (let j = 0; j < 16; j++) amax = Math.max(amax, Math.abs(x[b * 256 + s * 16 + j]));
      scale[s] = amax / 31;
    }
    const dh = f32ToF16(Math.max(...scale) / 127);
    const d = H[dh];
    const sc = Array.from(scale, (v) => (d > 0 ? Math.min(127, Math.round(v / d)) : 0));
    const o = b * 210;
    for (let e = 0; e < 256; e++) {
      const half = e >> 7;
      const w = e & 127;
      const k = w >> 5;
      const l = w & 31;
      const step = fr(d * sc[8 * half + (l >> 4) + 2 * k]);
      const q = step > 0 ? Math.min(63, Math.max(0, Math.round(x[b * 256 + e] / step) + 32)) : 32;
      const ql = o + 64 * half + l + (k & 1) * 32;
      out[ql] |= k < 2 ? q & 15 : (q & 15) << 4;
      out[o + 128 + 32 * half + l] |= (q >> 4) << (2 * k);
    }
    for (let i = 0; i < 16; i++) out[o + 192 + i] = sc[i] & 0xff;
    out[o + 208] = dh & 0xff;
    out[o + 209] = dh >> 8;
  }
  return out;
}
