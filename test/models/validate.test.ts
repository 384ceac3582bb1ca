// Every model family matches transformers: `validateAll` (what `loom validate` runs) on every refs file.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { ReferenceBackend } from "../../src/backends/reference/reference-backend.ts";
import { loadModel } from "../../src/models/model.ts";
import { readRefFile, validateAll } from "../../src/models/validate.ts";

const MODELS = [
  "arch-llama3-rope",
  "arch-qwen2",
  "arch-qwen3",
  "arch-mistral",
  "arch-gemma",
  "arch-phi3",
  "arch-gemma3",
  "tiny-llama-draft",
  "tiny-llama",
];

export function modelDir(name: string): string {
  const bundled = `models/${name}`;
  return existsSync(bundled) ? bundled : `test/fixtures/models/${name}`;
}

for (const name of MODELS) {
  test(`validate ${name} against transformers (reference backend, f32)`, () => {
    const refs = readRefFile(`test/fixtures/refs/${name}.json`);
    const model = loadModel(modelDir(name), new ReferenceBackend(), { maxTokens: 256, numBlocks: 16, blockSize: 16 });
    const results = validateAll(model.graph, refs, 1e-3);
    assert.equal(results.length, refs.cases.length);
    for (const r of results) {
      assert.ok(r.maxAbsDiffTop < 1e-3, `${name}/${r.name}: top-32 logits differ by ${r.maxAbsDiffTop}`);
      assert.ok(r.lseAbsDiff < 1e-3, `${name}/${r.name}: log-sum-exp differs by ${r.lseAbsDiff}`);
      assert.equal(r.greedy, "match", `${name}/${r.name}: greedy ${r.greedyMatched}/${r.greedyTotal}`);
      assert.ok(r.pass);
    }
  });
}

test("a case fails when the tolerance is impossibly tight", () => {
  const refs = readRefFile("test/fixtures/refs/arch-qwen2.json");
  const model = loadModel(modelDir("arch-qwen2"), new ReferenceBackend(), {
    maxTokens: 256,
    numBlocks: 16,
    blockSize: 16,
  });
  const results = validateAll(model.graph, refs, 1e-9);
  assert.ok(results.some((r) => !r.pass));
});
