/** Conversions between the floating-point storage formats of checkpoints and float32. */
import type { HostTensor } from "../backends/backend.ts";

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half → float32 value. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** float32 → bfloat16 bits, round to nearest even (as torch does). */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40; // quiet NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Decodes a host tensor of any float dtype into a new Float32Array. */
export function toFloat32(t: HostTensor): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const { data } = t;
  if (t.dtype === "f32") {
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(data.subarray(0, n * 4));
    return out;
  }
  // Copy into an aligned buffer before viewing as 16-bit words.
  const words = new Uint16Array(n);
  new Uint8Array(words.buffer).set(data.subarray(0, n * 2));
  const out = new Float32Array(n);
  if (t.dtype === "bf16") {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = words[i] << 16;
  } else {
    for (let i = 0; i < n; i++) out[i] = f16ToF32(words[i]);
  }
  return out;
}

/** Wraps float32 values as a host tensor. */
export function hostF32(values: Float32Array, shape: readonly number[]): HostTensor {
  return { dtype: "f32", shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/** Rounds float32 values to bf16 and returns them as a bf16 host tensor. */
export function hostBf16(values: Float32Array, shape: readonly number[]): HostTensor {
  const words = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) words[i] = f32ToBf16(values[i]);
  return { dtype: "bf16", shape, data: new Uint8Array(words.buffer) };
}
