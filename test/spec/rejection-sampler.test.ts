/**
 * Rejection sampling reproduces the target distribution (Leviathan et al. 2023, Theorem 1): draw d ~ q,
 * accept with min(1, p(d)/q(d)), else draw from norm(max(0, p − q)); the emitted token is ~ p. Checked
 * with 50,000 draws per (p, q) pair and a chi-square test at significance 0.001, degrees of freedom =
 * (tokens p gives mass) − 1; tokens p gives no mass must never appear.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../../src/sampler/rng.ts";
import { acceptDraft, sampleFrom, sampleResidual } from "../../src/spec/rejection-sampler.ts";
import { chiSquareCritical } from "./chi-square.ts";

const DRAWS = 50_000;

function norm(w: number[]): Float64Array {
  const s = w.reduce((a, b) => a + b, 0);
  return Float64Array.from(w, (x) => x / s);
}

/** One speculative position: returns the emitted token and whether the draft was accepted. */
function emit(p: Float64Array, q: Float64Array | null, fixedDraft: number, rng: Rng): [number, boolean] {
  const d = q === null ? fixedDraft : sampleFrom(q, rng);
  if (acceptDraft(p, q, d, rng)) return [d, true];
  return [sampleResidual(p, q, d, rng), false];
}

function chiSquare(counts: number[], p: Float64Array, n: number): { chi: number; dof: number } {
  let chi = 0;
  let dof = -1;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) {
      assert.equal(counts[i], 0, `token ${i} has no target mass but was emitted ${counts[i]} times`);
      continue;
    }
    chi += (counts[i] - n * p[i]) ** 2 / (n * p[i]);
    dof++;
  }
  return { chi, dof };
}

const PAIRS: [string, number[], number[] | null, number?][] = [
  ["q = p", [5, 3, 1, 1, 0, 2], [5, 3, 1, 1, 0, 2]],
  ["q flatter than p", [40, 25, 15, 10, 5, 3, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1]],
  ["q sharper than p", [3, 3, 2, 2, 1, 1], [50, 1, 1, 1, 1, 1]],
  ["q has zeros where p has mass", [4, 3, 2, 1, 1, 1, 1], [0, 0, 5, 5, 1, 0, 1]],
  ["p has zeros where q has mass", [0, 6, 0, 3, 1, 0], [2, 1, 3, 1, 1, 4]],
  ["disjoint supports", [0, 0, 0, 1, 2, 3], [3, 2, 1, 0, 0, 0]],
  ["q a point mass the target favours (n-gram)", [2, 9, 3, 1, 1], null, 1],
  ["q a point mass the target never emits", [2, 0, 3, 1, 4], null, 1],
];

for (const [name, pw, qw, fixed] of PAIRS) {
  test(`rejection sampling reproduces p: ${name}`, () => {
    const p = norm(pw);
    const q = qw === null ? null : norm(qw);
    const rng = new Rng(12345);
    const counts = new Array<number>(p.length).fill(0);
    let accepted = 0;
    for (let i = 0; i < DRAWS; i++) {
      const [t, ok] = emit(p, q, fixed ?? 0, rng);
      counts[t]++;
      if (ok) accepted++;
    }
    const { chi, dof } = chiSquare(counts, p, DRAWS);
    assert.ok(chi < chiSquareCritical(dof), `chi-square ${chi.toFixed(2)} with ${dof} dof (counts ${counts})`);
    // The acceptance rate is Σ min(p, q) (1 - TV distance): speculation's whole gain.
    let overlap = 0;
    for (let i = 0; i < p.length; i++) overlap += Math.min(p[i], q === null ? (i === fixed ? 1 : 0) : q[i]);
    overlap = Math.min(1, overlap);
    const sd = Math.sqrt((overlap * (1 - overlap)) / DRAWS);
    assert.ok(Math.abs(accepted / DRAWS - overlap) < 4 * sd + 1e-9, `acceptance ${accepted / DRAWS} vs ${overlap}`);
  });
}

test("a chi-square check this strict catches a biased sampler (sanity check of the test itself)", () => {
  const p = norm([40, 25, 15, 10, 5, 3, 1, 1]);
  const q = norm([1, 1, 1, 1, 1, 1, 1, 1]);
  const rng = new Rng(7);
  const counts = new Array<number>(p.length).fill(0);
  for (let i = 0; i < DRAWS; i++) {
    const d = sampleFrom(q, rng);
    // Wrong: resample from p itself on rejection instead of from the residual.
    counts[acceptDraft(p, q, d, rng) ? d : sampleFrom(p, rng)]++;
  }
  const { chi, dof } = chiSquare(counts, p, DRAWS);
  assert.ok(chi > chiSquareCritical(dof), `the biased sampler passed (chi-square ${chi.toFixed(2)})`);
});

test("greedy corner cases: one-hot p accepts exactly its token without drawing", () => {
  const p = norm([0, 0, 1, 0]);
  const rng = new Rng(1);
  const before = new Rng(1).next();
  assert.equal(acceptDraft(p, null, 2, rng), true);
  assert.equal(acceptDraft(p, null, 1, rng), false);
  assert.equal(rng.next(), before, "no random number was used");
  assert.equal(sampleResidual(p, null, 1, rng), 2);
});
