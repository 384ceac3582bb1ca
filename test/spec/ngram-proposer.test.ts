// N-gram prompt lookup: longest n first, most recent earlier occurrence, up to k following tokens.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ngramPropose } from "../../src/spec/ngram-proposer.ts";

test("proposes the tokens that followed the most recent earlier occurrence of the suffix", () => {
  //            0  1  2  3  4  5  6  7  8  9
  const toks = [1, 2, 3, 4, 9, 1, 2, 3, 7, 1, 2, 3];
  // "1 2 3" occurs at 0 and 5: the latest (5) is followed by 7, 1, 2, 3
  assert.deepEqual(ngramPropose(toks, 1, 3, 3), [7, 1, 2]);
  assert.deepEqual(ngramPropose(toks, 1, 3, 10), [7, 1, 2, 3]);
});

test("the longest n-gram wins over a more recent shorter one", () => {
  //            0  1  2  3  4  5  6  7  8
  const toks = [5, 6, 7, 8, 1, 7, 2, 6, 7];
  // n = 2: "6 7" occurs at 1 → propose 8 1 7; n = 1 alone would take "7" at 5 → 2.
  assert.deepEqual(ngramPropose(toks, 1, 2, 3), [8, 1, 7]);
  assert.deepEqual(ngramPropose(toks, 1, 1, 3), [2, 6, 7]);
});

test("min and max bound the n-gram lengths tried; no match proposes nothing", () => {
  const toks = [1, 2, 3, 4, 5, 3];
  assert.deepEqual(ngramPropose(toks, 1, 4, 2), [4, 5]);
  assert.deepEqual(ngramPropose(toks, 2, 4, 2), [], "only a 1-gram matches");
  assert.deepEqual(ngramPropose([1, 2, 3], 1, 3, 4), []);
  assert.deepEqual(ngramPropose([4], 1, 3, 4), [], "nothing before the suffix");
  assert.deepEqual(ngramPropose([4, 4], 1, 3, 0), [], "k = 0");
});

test("a match near the end proposes only the tokens that exist; runs of one token repeat", () => {
  assert.deepEqual(ngramPropose([8, 8, 8, 8], 1, 2, 5), [8]);
  assert.deepEqual(ngramPropose([1, 2, 1, 2, 1], 1, 4, 5), [2, 1]);
});

test("repeating the input: a quoted prompt is proposed token by token", () => {
  const quote = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20];
  const prompt = [1, 2, ...quote, 3, 4];
  // The model has started repeating the quote: 11 12 13 → propose 14 15 16 17.
  assert.deepEqual(ngramPropose([...prompt, 11, 12, 13], 1, 4, 4), [14, 15, 16, 17]);
});
