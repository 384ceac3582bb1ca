// Greedy tokens taken on the backend (Backend.argmaxRows, model-runner.ts) are the tokens the sampler
// would pick from the read-back logits, and that path is taken only when nothing else needs the logits.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { EngineCore } from "../../src/engine/engine-core.ts";
import type { SamplingParams } from "../../src/engine/types.ts";
import { drain, makeCore, prompt, request } from "./helpers.ts";

/** The core with its backend's argmaxRows counted (or removed: the JS sampler then sees every row). */
async function core(withArgmax: boolean): Promise<{ core: EngineCore; calls: () => number }> {
  const c = await makeCore();
  const be = c.runner.graph.backend as { argmaxRows?: (...a: never[]) => void };
  let calls = 0;
  const orig = be.argmaxRows!.bind(be);
  be.argmaxRows = withArgmax
    ? (...a) => {
        calls++;
        orig(...a);
      }
    : undefined;
  return { core: c, calls: () => calls };
}

function run(c: EngineCore, params: Partial<SamplingParams>[]): number[][] {
  params.forEach((p, i) => {
    c.addRequest(request(prompt(20 + 7 * i, i + 1), { maxTokens: 12, ignoreEos: true, ...p }, { id: `q${i}` }));
  });
  const out = drain(c).tokens;
  return params.map((_, i) => out.get(`q${i}`)![0]);
}

test("plain greedy batches take the argmax on the backend and produce the sampler's tokens", async () => {
  const batch = [{}, {}, { stopTokenIds: [5] }, { minTokens: 3 }];
  const on = await core(true);
  const off = await core(false);
  assert.deepEqual(run(on.core, batch), run(off.core, batch));
  // 12 sampling steps; min_tokens 3 keeps the first three on the sampler (its stop token is suppressed there)
  assert.equal(on.calls(), 9);
});

test("a row that needs its logits (logprobs, penalties, bias, sampling, n > 1) keeps the whole step on the sampler", async () => {
  for (const p of [
    { logprobs: 2 },
    { repetitionPenalty: 1.3 },
    { presencePenalty: 0.5 },
    { logitBias: { 7: 3 } },
    { temperature: 0.8, seed: 1 },
  ] as Partial<SamplingParams>[]) {
    const on = await core(true);
    const off = await core(false);
    assert.deepEqual(run(on.core, [{}, p]), run(off.core, [{}, p]), JSON.stringify(p));
    assert.equal(on.calls(), 0, `${JSON.stringify(p)}: argmaxRows must not run`);
  }
  const on = await core(true);
  on.core.addRequest(request(prompt(9, 3), { maxTokens: 4, n: 2, ignoreEos: true }, { id: "n2" }));
  const outs = drain(on.core).tokens.get("n2")!;
  assert.equal(outs.length, 2);
  assert.equal(on.calls(), 0, "n > 1 forks from the first row: sampled in JS");
});
