// ggml block formats: Q4_K and Q6_K decoding checked against blocks built here from chosen scales and
// codes (an encoder written per element, independent of the decoder's loop structure) and hand-computed
// values; Q8_0/Q4_0 quantizers and their lossless repacking into the CPU backend's int8/int4.
import assert from "node:assert/strict";
import { test } from "node:test";
import { f16ToF32 } from "../../src/formats/dtype.ts";
import {
  dequantize,
  encodeF16,
  q4_0ToInt4,
  q8_0ToInt8,
  quantizeQ4_0,
  quantizeQ4K,
  quantizeQ6K,
  quantizeQ8_0,
} from "../../src/formats/gguf/blocks.ts";
import { GgmlType } from "../../src/formats/gguf/types.ts";
import { dequantize as dequantizeLoom, f32ToF16 } from "../../src/formats/quant.ts";
import { mulberry32 as rng } from "../helpers/mulberry32.ts";

const fr = Math.fround;
const putHalf = (b: Uint8Array, at: number, bits: number) => {
  b[at] = bits & 0xff;
  b[at + 1] = bits >> 8;
};

/** One Q4_K block: halves d, dmin; 6-bit sc[8], m[8]; 4-bit codes q[256]. */
function encodeQ4K(d: number, dmin: number, sc: number[], m: number[], q: number[]): Uint8Array {
  const b = new Uint8Array(144);
  putHalf(b, 0, d);
  putHalf(b, 2, dmin);
  const s = b.subarray(4, 16);
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      s[j] |= sc[j] & 63;
      s[j + 4] |= m[j] & 63;
    } else {
      s[j + 4] = (sc[j] & 15) | ((m[j] & 15) << 4);
      s[j - 4] |= (sc[j] >> 4) << 6;
      s[j] |= (m[j] >> 4) << 6;
    }
  }
  for (let e = 0; e < 256; e++) {
    const chunk = Math.floor(e / 64);
    const w = e % 64;
    const at = 16 + 32 * chunk + (w % 32);
    b[at] |= w < 32 ? q[e] : q[e] << 4;
  }
  return b;
}

function expectedQ4K(d: number, dmin: number, sc: number[], m: number[], q: number[]): Float32Array {
  return Float32Array.from({ length: 256 }, (_, e) => {
    const s = Math.floor(e / 32);
    return fr(fr(fr(f16ToF32(d) * sc[s]) * q[e]) - fr(f16ToF32(dmin) * m[s]));
  });
}

/** One Q6_K block: half d, int8 scales[16], 6-bit codes q[256] (value = d·scale·(q − 32)). */
function encodeQ6K(d: number, scales: number[], q: number[]): Uint8Array {
  const b = new Uint8Array(210);
  for (let e = 0; e < 256; e++) {
    const h = Math.floor(e / 128);
    const w = e % 128;
    const k = Math.floor(w / 32);
    const l = w % 32;
    const low = q[e] & 15;
    const high = q[e] >> 4;
    const ql = 64 * h + l + (k % 2) * 32;
    b[ql] |= k < 2 ? low : low << 4;
    b[128 + 32 * h + l] |= high << (2 * k);
  }
  for (let i = 0; i < 16; i++) b[192 + i] = scales[i] & 0xff;
  putHalf(b, 208, d);
  return b;
}

function expectedQ6K(d: number, scales: number[], q: number[]): Float32Array {
  return Float32Array.from({ length: 256 }, (_, e) => {
    const h = Math.floor(e / 128);
    const w = e % 128;
    const sc = scales[8 * h + Math.floor((w % 32) / 16) + 2 * Math.floor(w / 32)];
    return fr(fr(f16ToF32(d) * sc) * (q[e] - 32));
  });
}

test("Q4_K: hand-computed values of a known block", () => {
  // d = 1, dmin = 0.5, sub-block s has scale s+1 and min s; code of element e is e % 16.
  const sc = [1, 2, 3, 4, 5, 6, 7, 8];
  const m = [0, 1, 2, 3, 4, 5, 6, 7];
  const q = Array.from({ length: 256 }, (_, e) => e % 16);
  const y = dequantize(GgmlType.Q4_K, encodeQ4K(0x3c00, 0x3800, sc, m, q), 256);
  assert.equal(y[0], 0); // s=0: 1·0 − 0
  assert.equal(y[33], 1.5); // s=1 (the high nibbles of the first 32 bytes): 2·1 − 0.5
  assert.equal(y[100], 4 * 4 - 1.5); // s=3, code 4
  assert.equal(y[255], 8 * 15 - 3.5); // s=7, code 15
});

test("Q4_K: random blocks (6-bit scales using their top bits) decode as built", () => {
  const r = rng(7);
  for (let trial = 0; trial < 50; trial++) {
    const d = f32ToF16((r() - 0.3) * 0.01);
    const dmin = f32ToF16(r() * 0.01);
    const sc = Array.from({ length: 8 }, () => Math.floor(r() * 64));
    const m = Array.from({ length: 8 }, () => Math.floor(r() * 64));
    const q = Array.from({ length: 256 }, () => Math.floor(r() * 16));
    const two = new Uint8Array(288);
    two.set(encodeQ4K(d, dmin, sc, m, q));
    two.set(encodeQ4K(dmin, d, m, sc, [...q].reverse()), 144);
    const y = dequantize(GgmlType.Q4_K, two, 512);
    assert.deepEqual(y.subarray(0, 256), expectedQ4K(d, dmin, sc, m, q));
    assert.deepEqual(y.subarray(256), expectedQ4K(dmin, d, m, sc, [...q].reverse()));
  }
});

test("Q6_K: hand-computed values of a known block", () => {
  const scales = Array.from({ length: 16 }, (_, i) => i - 8);
  const q = Array.from({ length: 256 }, (_, e) => e % 64);
  const y = dequantize(GgmlType.Q6_K, encodeQ6K(0x3400, scales, q), 256); // d = 0.25
  assert.equal(y[0], 0.25 * -8 * (0 - 32)); // scale 0
  assert.equal(y[200], 0.25 * 4 * (8 - 32)); // second half, third quarter, l = 8 → scale 8+0+4 = 12 → 4
  assert.equal(y[127], 0.25 * -1 * (63 - 32)); // first half, last quarter, l = 31 → scale 1+6 = 7 → −1
  assert.equal(y[16], 0.25 * -7 * (16 - 32)); // l = 16 → is = 1 → scale 1 → −7
});

test("Q6_K: random blocks decode as built", () => {
  const r = rng(11);
  for (let trial = 0; trial < 50; trial++) {
    const d = f32ToF16((r() - 0.5) * 0.02);
    const scales = Array.from({ length: 16 }, () => Math.floor(r() * 256) - 128);
    const q = Array.from({ length: 256 }, () => Math.floor(r() * 64));
    assert.deepEqual(dequantize(GgmlType.Q6_K, encodeQ6K(d, scales, q), 256), expectedQ6K(d, scales, q));
  }
});

test("Q8_0 and Q4_0 follow llama.cpp's reference quantizers", () => {
  // Q8_0: d = amax/127, codes round half away from zero.
  const x = Float32Array.from({ length: 32 }, (_, i) => (i - 16) / 16);
  const b8 = quantizeQ8_0(x, 32);
  const d8 = f16ToF32(b8[0] | (b8[1] << 8));
  assert.equal(d8, f16ToF32(f32ToF16(1 / 127)));
  assert.equal((b8[2] << 24) >> 24, -127); // x = −1
  assert.equal((b8[2 + 24] << 24) >> 24, Math.round(0.5 * 127)); // 63.5 → 64
  assert.equal((b8[2 + 8] << 24) >> 24, -64); // −63.5 → −64 (away from zero)
  // Q4_0: d = max/−8 with max the signed value of largest magnitude; that element gets code 0.
  const b4 = quantizeQ4_0(x, 32);
  assert.equal(f16ToF32(b4[0] | (b4[1] << 8)), 1 / 8); // max = −1 → d = 1/8
  assert.equal(b4[2] & 15, 0); // x[0] = −1 → −8 + 8
  const y = dequantize(GgmlType.Q4_0, b4, 32);
  for (let i = 0; i < 32; i++) assert.ok(Math.abs(y[i] - x[i]) <= 1 / 16 + 1e-7, `element ${i}`);
});

test("Q8_0/Q4_0 repack into int8/int4 without changing a single value", () => {
  const r = rng(3);
  const rows = 6;
  const cols = 96;
  const x = Float32Array.from({ length: rows * cols }, () => (r() - 0.5) * (r() < 0.1 ? 4 : 0.1));
  // Equal as numbers (a zero code may come out as −0 on one side and +0 on the other).
  const same = (a: Float32Array, b: Float32Array) => {
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) assert.ok(a[i] === b[i], `element ${i}: ${a[i]} vs ${b[i]}`);
  };
  const q8 = quantizeQ8_0(x, x.length);
  same(dequantizeLoom(q8_0ToInt8(q8, rows, cols)), dequantize(GgmlType.Q8_0, q8, x.length));
  const q4 = quantizeQ4_0(x, x.length);
  same(dequantizeLoom(q4_0ToInt4(q4, rows, cols)), dequantize(GgmlType.Q4_0, q4, x.length));
});

test("F16 and BF16 decode; F16 encodes with round-to-nearest-even", () => {
  const x = Float32Array.of(0, -0, 1, -2.5, 65504, 1e-8, 0.1, Number.POSITIVE_INFINITY);
  const f16 = dequantize(GgmlType.F16, encodeF16(x), x.length);
  assert.deepEqual(Array.from(f16.subarray(0, 5)), [0, -0, 1, -2.5, 65504]);
  assert.equal(f16[6], f16ToF32(f32ToF16(0.1)));
  assert.equal(f16[7], Number.POSITIVE_INFINITY);
  const bf = dequantize(GgmlType.BF16, Uint8Array.of(0x80, 0x3f, 0x20, 0xc0), 2);
  assert.deepEqual(Array.from(bf), [1, -2.5]);
});

test("the simple Q4_K/Q6_K encoders produce blocks that decode close to their input", () => {
  const r = rng(5);
  const x = Float32Array.from({ length: 1024 }, () => (r() + r() + r() - 1.5) * 0.05);
  const rms = (y: Float32Array) => Math.sqrt(y.reduce((a, v, i) => a + (v - x[i]) ** 2, 0) / x.length);
  const sigma = Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length);
  const e4 = rms(dequantize(GgmlType.Q4_K, quantizeQ4K(x, 1024), 1024)) / sigma;
  const e6 = rms(dequantize(GgmlType.Q6_K, quantizeQ6K(x, 1024), 1024)) / sigma;
  assert.ok(e4 < 0.12, `Q4_K relative RMS error ${e4}`);
  assert.ok(e6 < 0.03, `Q6_K relative RMS error ${e6}`);
});
