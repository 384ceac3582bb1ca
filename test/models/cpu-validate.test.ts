// The native CPU backend against transformers on every refs file (f32 and bf16 weights), and the
// quantization report (`loom validate --dtype int8|int4`): top-1 agreement and KL against f32.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, test } from "node:test";
import type { StorageDType } from "../../src/backends/backend.ts";
import { CpuBackend } from "../../src/backends/cpu/cpu-backend.ts";
import { loadModel } from "../../src/models/model.ts";
import { klDivergence, quantQuality } from "../../src/models/quant-quality.ts";
import { readRefFile, validateAll } from "../../src/models/validate.ts";

const modelDir = (name: string) => (existsSync(`models/${name}`) ? `models/${name}` : `test/fixtures/models/${name}`);

const loaded = CpuBackend.tryLoad({ threads: 2 });
const backend = "backend" in loaded ? loaded.backend : null;
const MODELS = [
  "tiny-llama",
  "arch-llama3-rope",
  "arch-qwen2",
  "arch-qwen3",
  "arch-mistral",
  "arch-gemma",
  "arch-gemma3",
  "arch-phi3",
];

const load = (name: string, storage: StorageDType) =>
  loadModel(modelDir(name), backend!, { maxTokens: 256, numBlocks: 20, blockSize: 16, storage });

describe("native CPU backend vs transformers", { skip: backend ? false : "native addon not built" }, () => {
  for (const name of MODELS)
    for (const storage of ["f32", "bf16"] as const)
      test(`${name}, ${storage} weights`, () => {
        const refs = readRefFile(`test/fixtures/refs/${name}.json`);
        for (const r of validateAll(load(name, storage).graph, refs, 1e-3)) {
          assert.ok(r.pass, `${name}/${r.name}: max|Δ| ${r.maxAbsDiffTop}, lse ${r.lseAbsDiff}, greedy ${r.greedy}`);
          assert.equal(r.greedy, "match", `${name}/${r.name}`);
        }
      });

  test("tiny-llama int8 and int4 stay close to f32 on the refs prompts, int4 further than int8", () => {
    const refs = readRefFile("test/fixtures/refs/tiny-llama.json");
    const f32 = load("tiny-llama", "f32").graph;
    const int8 = quantQuality(f32, load("tiny-llama", "int8").graph, refs.cases);
    const int4 = quantQuality(f32, load("tiny-llama", "int4").graph, refs.cases);
    assert.equal(
      int8.positions,
      refs.cases.reduce((s, c) => s + c.prompt_ids.length, 0),
    );
    assert.ok(int8.top1Agreement >= 0.97, `int8 top-1 ${int8.top1Agreement}`);
    assert.ok(int8.meanKl > 0 && int8.meanKl < 2e-3, `int8 mean KL ${int8.meanKl}`);
    assert.ok(int4.top1Agreement >= 0.85, `int4 top-1 ${int4.top1Agreement}`);
    assert.ok(int4.meanKl > 5 * int8.meanKl && int4.meanKl < 0.3, `int4 mean KL ${int4.meanKl}`);
    // f32 against itself: identical distributions
    const self = quantQuality(f32, load("tiny-llama", "f32").graph, refs.cases.slice(0, 2));
    assert.equal(self.top1Agreement, 1);
    assert.ok(self.meanKl < 1e-9);
  });
});

test("klDivergence of two logit rows", () => {
  const p = Float32Array.from([0, Math.log(3)]); // softmax: 1/4, 3/4
  const q = Float32Array.from([0, 0]); // 1/2, 1/2
  const expected = 0.25 * Math.log(0.5) + 0.75 * Math.log(1.5);
  assert.ok(Math.abs(klDivergence(p, q) - expected) < 1e-7);
  assert.ok(klDivergence(q, Float32Array.from([5, 5])) < 1e-12); // shift-invariant
});
