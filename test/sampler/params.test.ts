import assert from "node:assert/strict";
import { test } from "node:test";
import type { SamplingParams } from "../../src/engine/types.ts";
import { normalizeSamplingParams, ParamError } from "../../src/sampler/params.ts";

const limits = { vocabSize: 1000, maxModelLen: 4096, defaultMaxTokens: 256 };
const norm = (p: Record<string, unknown>) => normalizeSamplingParams(p as Partial<SamplingParams>, limits);

test("defaults", () => {
  assert.deepEqual(norm({}), {
    n: 1,
    temperature: 1,
    topP: 1,
    topK: 0,
    minP: 0,
    repetitionPenalty: 1,
    presencePenalty: 0,
    frequencyPenalty: 0,
    logitBias: {},
    seed: null,
    maxTokens: 256,
    minTokens: 0,
    stop: [],
    stopTokenIds: [],
    ignoreEos: false,
    logprobs: null,
    includeStopStrInOutput: false,
    skipSpecialTokens: true,
  });
  // null and undefined mean "default", as in the OpenAI API.
  assert.equal(norm({ temperature: null, maxTokens: undefined }).temperature, 1);
});

test("valid values pass through, at the edges of their ranges", () => {
  const input = {
    n: 128,
    temperature: 0,
    topP: 1e-9,
    topK: -1,
    minP: 1,
    repetitionPenalty: 0.01,
    presencePenalty: -2,
    frequencyPenalty: 2,
    logitBias: { "0": -100, "999": 100 },
    seed: -(2 ** 53 - 1),
    maxTokens: 4096,
    minTokens: 4096,
    stop: ["\n\nHuman:", "x".repeat(1024)],
    stopTokenIds: [0, 999],
    ignoreEos: true,
    logprobs: 20,
    includeStopStrInOutput: true,
    skipSpecialTokens: false,
  };
  const out = norm(input);
  assert.deepEqual(out, { ...input, logitBias: { 0: -100, 999: 100 } });
  assert.notEqual(out.stop, input.stop, "arrays are copied");
  assert.equal(norm({ temperature: 100 }).temperature, 100);
  assert.equal(norm({ topK: 5000 }).topK, 5000, "top_k above the vocabulary just disables it");
  assert.deepEqual(norm({ stop: "END" }).stop, ["END"], "a single stop string is accepted");
  assert.equal(norm({ logprobs: 0 }).logprobs, 0);
});

const bad: [string, unknown][] = [
  ["n", 0],
  ["n", 129],
  ["n", 1.5],
  ["n", "2"],
  ["temperature", -0.1],
  ["temperature", 100.5],
  ["temperature", Number.NaN],
  ["temperature", Infinity],
  ["temperature", "1"],
  ["temperature", true],
  ["topP", 0],
  ["topP", 1.01],
  ["topP", -0.5],
  ["topP", Number.NaN],
  ["topK", -2],
  ["topK", 2.5],
  ["topK", Infinity],
  ["minP", -0.01],
  ["minP", 1.5],
  ["minP", Number.NaN],
  ["repetitionPenalty", 0],
  ["repetitionPenalty", -1],
  ["repetitionPenalty", Infinity],
  ["repetitionPenalty", Number.NaN],
  ["presencePenalty", 2.5],
  ["presencePenalty", -2.01],
  ["frequencyPenalty", 3],
  ["frequencyPenalty", Number.NaN],
  ["logitBias", []],
  ["logitBias", "x"],
  ["logitBias", { "-1": 1 }],
  ["logitBias", { "1000": 1 }],
  ["logitBias", { "1.5": 1 }],
  ["logitBias", { "07": 1 }],
  ["logitBias", { abc: 1 }],
  ["logitBias", { "5": 101 }],
  ["logitBias", { "5": Number.NaN }],
  ["logitBias", { "5": "1" }],
  ["seed", 1.5],
  ["seed", 2 ** 53],
  ["seed", "7"],
  ["maxTokens", 0],
  ["maxTokens", 4097],
  ["maxTokens", 10.5],
  ["maxTokens", -5],
  ["minTokens", -1],
  ["minTokens", 300],
  ["minTokens", 0.5],
  ["stop", [""]],
  ["stop", ["x".repeat(1025)]],
  ["stop", Array.from({ length: 17 }, (_, i) => `s${i}`)],
  ["stop", [1]],
  ["stop", 5],
  ["stopTokenIds", [1000]],
  ["stopTokenIds", [-1]],
  ["stopTokenIds", [1.5]],
  ["stopTokenIds", 3],
  ["logprobs", 21],
  ["logprobs", -1],
  ["logprobs", 1.5],
  ["logprobs", true],
  ["ignoreEos", 1],
  ["includeStopStrInOutput", "yes"],
  ["skipSpecialTokens", 0],
  ["max_tokens", 5],
  ["temprature", 1],
];

for (const [param, value] of bad) {
  test(`rejects ${param} = ${typeof value === "string" ? JSON.stringify(value) : Array.isArray(value) ? "[…]" : typeof value === "object" ? JSON.stringify(value) : String(value)}`, () => {
    assert.throws(
      () => norm({ [param]: value }),
      (e: unknown) => e instanceof ParamError && e.param === param && e.name === "ParamError" && e.message.length > 0,
    );
  });
}

test("minTokens is checked against the default maxTokens", () => {
  assert.throws(
    () => norm({ minTokens: 257 }),
    (e: unknown) => e instanceof ParamError && e.param === "minTokens",
  );
  assert.equal(norm({ minTokens: 256 }).minTokens, 256);
  // Without maxModelLen, maxTokens has no upper bound here.
  assert.equal(
    normalizeSamplingParams({ maxTokens: 10 ** 6 }, { vocabSize: 10, defaultMaxTokens: 16 }).maxTokens,
    10 ** 6,
  );
});
