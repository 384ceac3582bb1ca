/**
 * The int8/int4 quantizers of src/formats/quant.ts, the spec every backend reproduces bit for bit.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { f16ToF32 } from "../../src/formats/dtype.ts";
import {
  dequantize,
  f32ToF16,
  QGROUP,
  quantizeInt4,
  quantizeInt8,
  quantizeInt8Group,
} from "../../src/formats/quant.ts";

const values = (n: number, amp: (i: number) => number) =>
  Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 1.37) * amp(i)));

test("int8 weights: f16 group scales (as Q8_0), every value within half a step of its input", () => {
  const [rows, cols] = [5, 3 * QGROUP + 7]; // a partial last group
  const x = values(rows * cols, (i) => 10 ** ((i % 9) - 5)); // groups from 1e-5 to 1e3
  const m = quantizeInt8(x, rows, cols);
  for (const d of m.scales) assert.equal(f16ToF32(f32ToF16(d)), d, `scale ${d} is not an f16 value`);
  const xh = dequantize(m);
  const G = Math.ceil(cols / QGROUP);
  for (let i = 0; i < x.length; i++) {
    const d = m.scales[Math.floor(i / cols) * G + Math.floor((i % cols) / QGROUP)];
    assert.ok(Math.abs(x[i] - xh[i]) <= d / 2 + Math.abs(x[i]) * 1e-6, `element ${i}: ${x[i]} -> ${xh[i]} (d ${d})`);
  }
});

test("int8 weights: a group past f16's range saturates at scale 65504 instead of becoming inf or NaN", () => {
  const x = values(QGROUP, () => 1e7);
  const m = quantizeInt8(x, 1, QGROUP);
  assert.equal(m.scales[0], 65504);
  for (const v of dequantize(m)) assert.ok(Number.isFinite(v) && Math.abs(v) <= 127 * 65504);
  assert.deepEqual(quantizeInt8(new Float32Array(QGROUP), 1, QGROUP).scales, Float32Array.of(0));
});

test("the int8 KV rule keeps its scale in f32", () => {
  const x = Float32Array.from({ length: 64 }, (_, i) => (i === 3 ? 1 : 0.25));
  const d = quantizeInt8Group(x, 0, 64, new Int8Array(64), 0);
  assert.equal(d, Math.fround(1 / 127));
  assert.notEqual(f16ToF32(f32ToF16(d)), d);
  assert.equal(quantizeInt8Group(x, 0, 64, new Int8Array(64), 0, true), f16ToF32(f32ToF16(d)));
});

test("int4: every value within half a step of its input (scale and min per group)", () => {
  const [rows, cols] = [3, 2 * QGROUP + 5];
  const x = values(rows * cols, (i) => 1 + (i % 7));
  const m = quantizeInt4(x, rows, cols);
  const xh = dequantize(m);
  const G = Math.ceil(cols / QGROUP);
  for (let i = 0; i < x.length; i++) {
    const d = m.scales[2 * (Math.floor(i / cols) * G + Math.floor((i % cols) / QGROUP))];
    assert.ok(Math.abs(x[i] - xh[i]) <= d / 2 + 1e-5, `element ${i}: ${x[i]} -> ${xh[i]} (d ${d})`);
  }
});
