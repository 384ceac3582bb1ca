/**
 * Every refs file on one backend, every weight storage:
 *
 *   node --import tsx scripts/validate-refs.ts [--backend cpu|reference] [--json out.json]
 *
 * f32 and bf16: `loom validate` (max |Δ| of the top-32 logits and of the log-sum-exp against transformers,
 * greedy continuation; tolerance 1e-3). int8 and int4: top-1 agreement and mean KL(p_f32 ‖ p_quant) over
 * the whole vocabulary at every prompt position, against the same model with f32 weights.
 */
import { existsSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { StorageDType } from "../src/backends/backend.ts";
import { selectBackend } from "../src/backends/select.ts";
import { loadModel } from "../src/models/model.ts";
import { quantQuality } from "../src/models/quant-quality.ts";
import { readRefFile, validateAll } from "../src/models/validate.ts";

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const root = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));
const MODELS = [
  "tiny-llama",
  "tiny-llama-draft",
  "arch-llama3-rope",
  "arch-mistral",
  "arch-qwen2",
  "arch-qwen3",
  "arch-gemma",
  "arch-gemma3",
  "arch-phi3",
];
const TOLERANCE = 1e-3;

const { backend } = await selectBackend((opt("--backend") ?? "cpu") as "cpu" | "reference");
console.log(`backend: ${backend.describe()}`);
console.log(
  "model              f32 max|Δ| (greedy)    bf16 max|Δ| (greedy)   int8 top-1 / mean KL    int4 top-1 / mean KL",
);
const rows: Record<string, unknown>[] = [];
let failed = 0;
for (const name of MODELS) {
  const dir = existsSync(root(`models/${name}`)) ? root(`models/${name}`) : root(`test/fixtures/models/${name}`);
  const refs = readRefFile(root(`test/fixtures/refs/${name}.json`));
  const longest = Math.max(...refs.cases.map((c) => c.prompt_ids.length + c.greedy_ids.length));
  const load = (storage: StorageDType) =>
    loadModel(dir, backend, {
      maxTokens: Math.max(...refs.cases.map((c) => c.prompt_ids.length)),
      numBlocks: Math.ceil(longest / 16) + 1,
      blockSize: 16,
      storage,
    });
  const row: Record<string, unknown> = { model: name };
  const cells: string[] = [];
  const f32 = load("f32");
  for (const storage of ["f32", "bf16"] as const) {
    const graph = storage === "f32" ? f32.graph : load(storage).graph;
    const res = validateAll(graph, refs, TOLERANCE);
    const maxDiff = Math.max(...res.flatMap((r) => [r.maxAbsDiffTop, r.lseAbsDiff]));
    const greedy = `${res.reduce((s, r) => s + r.greedyMatched, 0)}/${res.reduce((s, r) => s + r.greedyTotal, 0)}`;
    const pass = res.every((r) => r.pass);
    if (!pass) failed++;
    row[storage] = { maxAbsDiff: maxDiff, greedy, pass, ties: res.filter((r) => r.greedy === "tie").length };
    cells.push(`${maxDiff.toExponential(1)} (${greedy}) ${pass ? "ok" : "FAIL"}`.padEnd(22));
  }
  for (const storage of ["int8", "int4"] as const) {
    const q = quantQuality(f32.graph, load(storage).graph, refs.cases);
    row[storage] = { top1Agreement: q.top1Agreement, meanKl: q.meanKl, maxKl: q.maxKl, positions: q.positions };
    cells.push(`${(100 * q.top1Agreement).toFixed(1)}% / ${q.meanKl.toExponential(2)}`.padEnd(22));
  }
  rows.push(row);
  console.log(`${name.padEnd(18)} ${cells.join("  ")}`);
}
console.log(failed ? `${failed} f32/bf16 validations FAILED` : "every f32 and bf16 validation passed");
const json = opt("--json");
if (json)
  writeFileSync(json, `${JSON.stringify({ backend: backend.describe(), tolerance: TOLERANCE, rows }, null, 2)}\n`);
backend.dispose();
if (failed) process.exitCode = 1;
