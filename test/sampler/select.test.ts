import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../../src/sampler/rng.ts";
import { quickSelectTopK, selectByMass, selectTopK, sortByRank } from "../../src/sampler/select.ts";

function rankOrder(s: ArrayLike<number>): number[] {
  return Array.from({ length: s.length }, (_, i) => i).sort((a, b) => s[b] - s[a] || a - b);
}

function randomScores(rng: Rng, n: number, levels: number): Float64Array {
  // Few levels ⇒ many ties.
  return Float64Array.from({ length: n }, () => Math.floor(rng.next() * levels));
}

test("selectTopK (heap and quickselect paths) finds the k best, ties by lower id", () => {
  const rng = new Rng(3);
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + Math.floor(rng.next() * 400);
    const s = randomScores(rng, n, trial % 2 ? 5 : 1e6);
    const k = Math.floor(rng.next() * (n + 3));
    const out = new Int32Array(n + 3);
    const m = selectTopK(s, n, k, out);
    assert.equal(m, Math.min(k, n));
    const got = [...out.subarray(0, m)].sort((a, b) => a - b);
    const want = rankOrder(s)
      .slice(0, m)
      .sort((a, b) => a - b);
    assert.deepEqual(got, want, `n ${n} k ${k}`);
  }
});

test("quickSelectTopK and sortByRank", () => {
  const rng = new Rng(4);
  const s = randomScores(rng, 1000, 30);
  const ids = Int32Array.from({ length: 1000 }, (_, i) => i);
  quickSelectTopK(ids, 1000, 100, s);
  sortByRank(ids, 0, 100, s);
  assert.deepEqual([...ids.subarray(0, 100)], rankOrder(s).slice(0, 100));
});

test("selectByMass returns the smallest top-ranked prefix reaching the mass", () => {
  const rng = new Rng(5);
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + Math.floor(rng.next() * 300);
    // Dyadic weights keep every partial sum exact, so the boundary is unambiguous.
    const w = Float64Array.from({ length: n }, () => Math.floor(rng.next() * 16) / 16);
    const total = w.reduce((a, b) => a + b, 0);
    const need = Math.floor(rng.next() * 64 * total) / 64;
    const ids = Int32Array.from({ length: n }, (_, i) => i);
    const j = selectByMass(ids, n, w, need);
    const order = rankOrder(w);
    let cum = 0;
    let want = n;
    for (let i = 0; i < n; i++) {
      cum += w[order[i]];
      if (cum >= need) {
        want = i + 1;
        break;
      }
    }
    assert.equal(j, want, `n ${n} need ${need}`);
    assert.deepEqual(
      [...ids.subarray(0, j)].sort((a, b) => a - b),
      order.slice(0, j).sort((a, b) => a - b),
    );
  }
});
