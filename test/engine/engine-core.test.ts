// Engine core behaviour on a small model: prefix reuse, seeded sampling, n > 1, aborts, rejection.
import assert from "node:assert/strict";
import { test } from "node:test";
import { RequestRejectedError } from "../../src/scheduler/scheduler.ts";
import { collect, drain, makeCore, prompt, request } from "./helpers.ts";

test("a second request sharing a 200-token prefix computes only its new tokens, output unchanged", async () => {
  const shared = prompt(200, 1);
  const second = [...shared, ...prompt(13, 2)];
  // Baseline: the second request alone on a cold cache.
  const cold = await makeCore();
  cold.addRequest(request(second, { maxTokens: 5, ignoreEos: true }, { id: "b" }));
  const expected = drain(cold).tokens.get("b")![0];

  const core = await makeCore();
  core.addRequest(request([...shared, 7, 8, 9], { maxTokens: 5, ignoreEos: true }, { id: "a" }));
  drain(core);
  const before = core.stats();
  core.addRequest(request(second, { maxTokens: 5, ignoreEos: true }, { id: "b" }));
  const out = drain(core);
  const after = core.stats();
  const reused = Math.floor(200 / 16) * 16; // whole blocks of the shared prefix
  // Prompt tokens computed: the new ones only; then 4 decode steps (the 5th token needs no forward).
  assert.equal(after.computedTokens - before.computedTokens, second.length - reused + 4);
  assert.equal(after.prefixCacheHits - before.prefixCacheHits, reused);
  assert.equal(out.deltas.find((d) => d.requestId === "b")!.numCachedTokens, reused);
  assert.deepEqual(out.tokens.get("b")![0], expected);
});

test("seeded sampling reproduces across batch compositions", async () => {
  const sampled = { temperature: 4, topP: 0.95, topK: 500, seed: 1234, maxTokens: 12, ignoreEos: true };
  const alone = await makeCore();
  alone.addRequest(request(prompt(30, 3), sampled, { id: "s" }));
  const expected = drain(alone).tokens.get("s")![0];

  const busy = await makeCore({ maxNumBatchedTokens: 37 });
  for (let i = 0; i < 9; i++) {
    busy.addRequest(request(prompt(10 + i * 13, 100 + i), { temperature: 1, seed: i, maxTokens: 9 + i }));
  }
  busy.addRequest(request(prompt(30, 3), sampled, { id: "s" }));
  const out = drain(busy);
  assert.deepEqual(out.tokens.get("s")![0], expected);

  const other = await makeCore();
  other.addRequest(request(prompt(30, 3), { ...sampled, seed: 4321 }, { id: "s" }));
  assert.notDeepEqual(drain(other).tokens.get("s")![0], expected, "a different seed should differ");
});

test("n > 1 shares the prompt and gives n independent sequences; seeds make them reproducible", async () => {
  const p = { temperature: 4, seed: 99, n: 3, maxTokens: 10, ignoreEos: true };
  const run = async () => {
    const core = await makeCore();
    core.addRequest(request(prompt(37, 5), p, { id: "n" }));
    const out = drain(core, () => core.scheduler.checkInvariants());
    assert.equal(core.stats().kvBlocksUsed, 0);
    return out;
  };
  const a = await run();
  const seqs = a.tokens.get("n")!;
  assert.equal(seqs.length, 3);
  for (const s of seqs) assert.equal(s.length, 10);
  assert.ok(new Set(seqs.map((s) => s.join())).size > 1, "siblings should differ");
  assert.deepEqual(a.reasons.get("n"), ["length", "length", "length"]);
  assert.deepEqual((await run()).tokens.get("n"), seqs);
});

test("aborting at any step returns every block", async () => {
  for (let abortAt = 0; abortAt < 12; abortAt++) {
    const core = await makeCore({ maxNumBatchedTokens: 24 });
    for (let i = 0; i < 6; i++) {
      core.addRequest(
        request(prompt(20 + 9 * i, 40 + i), { maxTokens: 6, n: 1 + (i % 3), temperature: 1 }, { id: `x${i}` }),
      );
    }
    const out = collect([]);
    for (let step = 0; core.hasWork(); step++) {
      collect(core.step(), out);
      core.scheduler.checkInvariants();
      if (step === abortAt) for (let i = 0; i < 6; i += 2) collect(core.abort(`x${i}`), out);
    }
    assert.equal(core.stats().kvBlocksUsed, 0, `abort at step ${abortAt}`);
    core.scheduler.checkInvariants();
  }
});

test("a request that can never fit is refused, not queued", async () => {
  const core = await makeCore({ maxModelLen: 64 });
  assert.throws(() => core.addRequest(request(prompt(64, 1))), RequestRejectedError);
  const blockBytes = 2 * 2 * 2 * 16 * 4 * 16;
  const tiny = await makeCore({ kvCacheMemory: blockBytes * 4 });
  assert.throws(() => tiny.addRequest(request(prompt(100, 1))), /block/);
  assert.equal(tiny.hasWork(), false);
});

test("stop token ids, min_tokens and max_tokens end sequences with the right reason", async () => {
  const core = await makeCore();
  core.addRequest(request(prompt(12, 8), { maxTokens: 20, ignoreEos: true }, { id: "free" }));
  const free = drain(core).tokens.get("free")![0];
  const stopAt = free[5];
  const firstIdx = free.indexOf(stopAt);
  core.addRequest(request(prompt(12, 8), { maxTokens: 20, ignoreEos: true, stopTokenIds: [stopAt] }, { id: "stop" }));
  core.addRequest(
    request(prompt(12, 8), { maxTokens: 20, ignoreEos: true, stopTokenIds: [stopAt], minTokens: 19 }, { id: "min" }),
  );
  const out = drain(core);
  assert.deepEqual(out.tokens.get("stop")![0], free.slice(0, firstIdx + 1));
  assert.equal(out.reasons.get("stop")![0], "stop");
  const stopped = out.deltas.find((d) => d.requestId === "stop" && d.finishReason);
  assert.equal(stopped!.stopTokenId, stopAt);
  assert.ok(out.tokens.get("min")![0].length >= 19);
});
