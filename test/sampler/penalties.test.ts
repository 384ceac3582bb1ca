import assert from "node:assert/strict";
import { test } from "node:test";
import {
  applyFrequencyPresencePenalty,
  applyLogitBias,
  applyRepetitionPenalty,
  Penalizer,
  suppressTokens,
  TokenMarks,
} from "../../src/sampler/penalties.ts";
import { context, params } from "./helpers.ts";

const f = Math.fround;

test("repetition penalty: divides positive, multiplies non-positive, once per distinct seen token", () => {
  const logits = Float32Array.of(2, -1, 0, 3, 1.5);
  // 0 seen in prompt and output (twice), 1 in output, 2 in prompt; 3 and 4 unseen; 99 out of vocab ignored.
  applyRepetitionPenalty(logits, 2, [0, 2, 99], [0, 1, 0], new TokenMarks(5));
  assert.deepEqual([...logits], [1, -2, 0, 3, 1.5]);
  const unchanged = Float32Array.of(2, -1);
  applyRepetitionPenalty(unchanged, 1, [0, 1], [], new TokenMarks(2));
  assert.deepEqual([...unchanged], [2, -1]);
  // A penalty below 1 encourages repetition.
  const boost = Float32Array.of(2, -1);
  applyRepetitionPenalty(boost, 0.5, [0, 1], [], new TokenMarks(2));
  assert.deepEqual([...boost], [4, -0.5]);
});

test("TokenMarks are emptied by clear()", () => {
  const marks = new TokenMarks(4);
  marks.clear();
  assert.equal(marks.add(2), true);
  assert.equal(marks.add(2), false);
  marks.clear();
  assert.equal(marks.add(2), true);
});

test("frequency and presence penalties use output counts and leave the scratch zeroed", () => {
  const logits = Float32Array.of(1, 1, 1, 1);
  const counts = new Uint32Array(4);
  applyFrequencyPresencePenalty(logits, 0.5, 0.25, [2, 0, 2, 2, 7], counts);
  // token 0: count 1 → 1 - 0.5 - 0.25; token 2: count 3 → 1 - 1.5 - 0.25.
  assert.deepEqual([...logits], [0.25, 1, -0.75, 1]);
  assert.deepEqual([...counts], [0, 0, 0, 0]);
  const negative = Float32Array.of(0, 0);
  applyFrequencyPresencePenalty(negative, -1, -2, [1, 1], new Uint32Array(2));
  assert.deepEqual([...negative], [0, 4]);
});

test("logit bias and suppression", () => {
  const logits = Float32Array.of(0.5, 1, 2);
  applyLogitBias(logits, { 0: 1.25, 2: -100 });
  assert.deepEqual([...logits], [1.75, 1, -98]);
  suppressTokens(logits, [1, 5]);
  assert.deepEqual([...logits], [1.75, -Infinity, -98]);
});

test("Penalizer applies min_tokens, bias, repetition, then frequency/presence (vLLM order)", () => {
  const p = params({
    logitBias: { 0: 1, 1: 0.5 },
    repetitionPenalty: 2,
    frequencyPenalty: 0.5,
    presencePenalty: 0.25,
    minTokens: 5,
    stopTokenIds: [4],
  });
  const logits = Float32Array.of(1, 0.1, -1, 2, 2, 3);
  new Penalizer(6).apply(logits, context(p, { promptTokenIds: [2], outputTokenIds: [0, 0], eosTokenIds: [5] }));
  // token 0: (1 + 1) / 2 - 0.5 * 2 - 0.25 = -0.25 (bias before the penalty).
  // token 1: 0.1 + 0.5 (unseen); token 2: -1 * 2 (prompt only: no frequency/presence).
  assert.deepEqual([...logits], [-0.25, f(f(0.1) + 0.5), -2, 2, -Infinity, -Infinity]);
  // Once min_tokens is reached nothing is suppressed.
  const later = Float32Array.of(0, 0, 0, 0, 2, 3);
  new Penalizer(6).apply(later, context(params({ minTokens: 1 }), { outputTokenIds: [1], eosTokenIds: [5] }));
  assert.deepEqual([...later], [0, 0, 0, 0, 2, 3]);
});
