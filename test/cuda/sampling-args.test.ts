/** Packing of GPU sampling parameters (src/backends/cuda/sampling-args.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SamplingArgs } from "../../src/backends/cuda/sampling-args.ts";

const row = (o: Partial<{ temperature: number; topK: number; topP: number; minP: number; uniform: number }> = {}) => ({
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  uniform: 0.5,
  ...o,
});

test("rows pack as [temperature | topP | minP | u] and topK", () => {
  const s = new SamplingArgs();
  const greedy = s.pack([row({ temperature: 0.7, topK: 40, topP: 0.9, uniform: 0.25 }), row({ minP: 0.05 })]);
  assert.equal(greedy, false);
  const f = Math.fround;
  assert.deepEqual(Array.from(s.params), [f(0.7), 1, f(0.9), 1, 0, f(0.05), 0.25, 0.5]);
  assert.deepEqual(Array.from(s.topK), [40, 0]);
});

test("all rows below the greedy temperature take the argmax kernel", () => {
  const s = new SamplingArgs();
  assert.equal(s.pack([row({ temperature: 0 }), row({ temperature: 1e-6 })]), true);
  assert.equal(s.pack([row({ temperature: 0 }), row({ temperature: 0.01 })]), false);
});

test("arrays are reused for smaller batches and the offsets follow the batch", () => {
  const s = new SamplingArgs();
  s.pack([row(), row(), row()]);
  const buf = s.params;
  s.pack([row({ temperature: 2, uniform: 0.75 })]);
  assert.equal(s.params, buf);
  assert.equal(s.rows, 1);
  assert.equal(s.params[0], 2);
  assert.equal(s.params[3], 0.75);
});

test("out-of-range parameters are rejected with the row named", () => {
  const s = new SamplingArgs();
  assert.throws(() => s.pack([row(), row({ topP: 0 })]), /row 1: topP 0/);
  assert.throws(() => s.pack([row({ uniform: 1 })]), /uniform 1 must be in \[0, 1\)/);
  assert.throws(() => s.pack([row({ topK: -1 })]), /topK -1/);
  assert.throws(() => s.pack([row({ temperature: Number.NaN })]), /temperature/);
});
