// Continuous batching must not change results: a request gives the same tokens alone or in any batch,
// with chunked prefill, prefix caching and preemption in play.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { CoreRequest } from "../../src/engine/engine-core.ts";
import { drain, makeCore, prompt, request } from "./helpers.ts";

const MAX_MODEL_LEN = 700;

function workload(): CoreRequest[] {
  // 32 prompts from 1 to 600 tokens, some sharing prefixes, mixed max_tokens; greedy with ignore_eos
  // so that every request runs its full length.
  const lengths = Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : i === 31 ? 600 : 1 + ((i * 389) % 600)));
  return lengths.map((len, i) => {
    const p = i % 5 === 0 && i > 0 ? [...prompt(40, 7), ...prompt(len, i)].slice(0, Math.max(len, 41)) : prompt(len, i);
    return request(p, { maxTokens: 1 + ((i * 7) % 24), ignoreEos: true }, { id: `q${i}` });
  });
}

async function alone(reqs: CoreRequest[]): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const r of reqs) {
    const core = await makeCore({ maxModelLen: MAX_MODEL_LEN, enablePrefixCaching: false });
    core.addRequest({ ...r });
    out.set(r.id, drain(core).tokens.get(r.id)![0]);
  }
  return out;
}

test("32 concurrent greedy requests (prompts 1–600 tokens) give exactly what each gives alone", async () => {
  const reqs = workload();
  const expected = await alone(reqs);
  for (const [name, opts] of [
    ["chunked prefill, prefix cache", { maxNumBatchedTokens: 256, maxNumSeqs: 32 }],
    ["small budget, 7 seqs", { maxNumBatchedTokens: 61, maxNumSeqs: 7 }],
  ] as const) {
    const core = await makeCore({ maxModelLen: MAX_MODEL_LEN, ...opts });
    for (const r of reqs) core.addRequest({ ...r });
    const out = drain(core, () => core.scheduler.checkInvariants());
    for (const r of reqs) assert.deepEqual(out.tokens.get(r.id)![0], expected.get(r.id), `${name}: ${r.id}`);
    assert.equal(core.stats().kvBlocksUsed, 0);
  }

  // Again with a KV budget so small that sequences must be preempted and recomputed.
  const blockBytes = 2 * 2 * 2 * 16 * 4 * 16; // K+V × layers × kv heads × head dim × f32 × block size
  const core = await makeCore({ maxModelLen: MAX_MODEL_LEN, kvCacheMemory: blockBytes * 60, maxNumBatchedTokens: 512 });
  for (const r of reqs) core.addRequest({ ...r });
  const out = drain(core, () => core.scheduler.checkInvariants());
  assert.ok(core.stats().numPreemptions > 0, "expected preemptions with a 60-block pool");
  for (const r of reqs) assert.deepEqual(out.tokens.get(r.id)![0], expected.get(r.id), `preemption: ${r.id}`);
  assert.equal(core.stats().kvBlocksUsed, 0);
});
