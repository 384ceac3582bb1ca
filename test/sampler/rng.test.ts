import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../../src/sampler/rng.ts";

test("xoshiro128** reference vector from state [1, 2, 3, 4]", () => {
  const rng = new Rng(0);
  Object.assign(rng, { s0: 1, s1: 2, s2: 3, s3: 4 });
  assert.deepEqual([rng.nextUint32(), rng.nextUint32(), rng.nextUint32()], [11520, 0, 5927040]);
});

test("same seed ⇒ same stream; different seeds differ", () => {
  const take = (r: Rng) => Array.from({ length: 16 }, () => r.next());
  assert.deepEqual(take(new Rng(42)), take(new Rng(42)));
  const seeds = [0, 1, -1, 2 ** 32, 2 ** 32 + 1, -(2 ** 40), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];
  const firsts = new Set(seeds.map((s) => new Rng(s).nextUint32()));
  assert.equal(firsts.size, seeds.length, "seeds differing only in their high word give different streams");
  assert.notDeepEqual(take(Rng.random()), take(Rng.random()));
});

test("next() is in [0, 1) and roughly uniform", () => {
  const rng = new Rng(9);
  const bins = new Array(10).fill(0);
  let sum = 0;
  for (let i = 0; i < 100_000; i++) {
    const x = rng.next();
    assert.ok(x >= 0 && x < 1);
    sum += x;
    bins[Math.floor(x * 10)]++;
  }
  assert.ok(Math.abs(sum / 100_000 - 0.5) < 0.005);
  for (const b of bins) assert.ok(Math.abs(b - 10_000) < 500);
});

test("rejects seeds that are not safe integers", () => {
  for (const bad of [0.5, Number.NaN, Infinity, 2 ** 53]) assert.throws(() => new Rng(bad), RangeError);
});
