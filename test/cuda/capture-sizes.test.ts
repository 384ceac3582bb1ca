/** CUDA graph capture sizes and batch padding (src/backends/cuda/capture-sizes.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { captureSizes, DEFAULT_CAPTURE_SIZES, paddedBatch } from "../../src/backends/cuda/capture-sizes.ts";

test("default capture sizes: 1, 2, 4, then multiples of 8 up to 256", () => {
  assert.deepEqual(DEFAULT_CAPTURE_SIZES.slice(0, 6), [1, 2, 4, 8, 16, 24]);
  assert.equal(DEFAULT_CAPTURE_SIZES.at(-1), 256);
  assert.equal(DEFAULT_CAPTURE_SIZES.length, 35);
});

test("sizes are limited by the largest batch the graph's buffers hold", () => {
  assert.deepEqual(captureSizes(20), [1, 2, 4, 8, 16]);
  assert.deepEqual(captureSizes(3, [4, 2, 2, 1, 0, 2.5]), [1, 2]);
  assert.deepEqual(captureSizes(0), []);
});

test("a batch is padded to the smallest capture size that holds it", () => {
  const sizes = captureSizes(64);
  assert.equal(paddedBatch(1, sizes), 1);
  assert.equal(paddedBatch(3, sizes), 4);
  assert.equal(paddedBatch(5, sizes), 8);
  assert.equal(paddedBatch(17, sizes), 24);
  assert.equal(paddedBatch(64, sizes), 64);
  assert.equal(paddedBatch(65, sizes), null);
  assert.equal(paddedBatch(0, sizes), null);
});
