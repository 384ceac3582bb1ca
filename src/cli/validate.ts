/** `loom validate`: recompute a reference file's logits and greedy ids and compare (see models/validate.ts). */
import type { Command } from "commander";
import type { StorageDType } from "../backends/backend.ts";
import { selectBackend } from "../backends/select.ts";
import { DEFAULT_MODEL } from "../engine/options.ts";
import { loadModel } from "../models/model.ts";
import { readRefFile, validateAll } from "../models/validate.ts";

export function registerValidate(program: Command): void {
  program
    .command("validate")
    .description("compare this engine's logits and greedy outputs with a reference file (transformers refs format)")
    .requiredOption("--refs <file>", "reference JSON (its .logits.safetensors must sit beside it)")
    .option("--model <dir>", "model folder", DEFAULT_MODEL)
    .option("--tolerance <x>", "max allowed |Δ| of logits and log-sum-exp", Number.parseFloat, 1e-3)
    .option("--backend <name>", "auto | cpu | reference", "auto")
    .option("--dtype <t>", "weight storage: f32 | bf16 | int8 | int4 (default: f32)", "f32")
    .option("--threads <n>", "threads for the cpu backend", (v) => Number.parseInt(v, 10))
    .action(async (o) => {
      if (!(o.tolerance > 0)) throw new Error(`--tolerance must be a positive number`);
      const refs = readRefFile(o.refs);
      const { backend, warning } = await selectBackend(o.backend, o.threads);
      if (warning) console.error(`warning: ${warning}`);
      const longest = Math.max(...refs.cases.map((c) => c.prompt_ids.length + c.greedy_ids.length));
      const blockSize = 16;
      const model = loadModel(o.model, backend, {
        maxTokens: Math.max(...refs.cases.map((c) => c.prompt_ids.length)),
        numBlocks: Math.ceil(longest / blockSize) + 1,
        blockSize,
        storage: o.dtype as StorageDType,
      });
      console.log(`model ${model.dir} on ${backend.describe()}, weights ${o.dtype}, tolerance ${o.tolerance}`);
      const results = validateAll(model.graph, refs, o.tolerance);
      const pad = Math.max(...results.map((r) => r.name.length));
      console.log(`${"case".padEnd(pad)}  tokens  max|Δ|top32  |Δ|lse      greedy`);
      for (const r of results) {
        console.log(
          `${r.name.padEnd(pad)}  ${String(r.promptTokens).padStart(6)}  ${r.maxAbsDiffTop.toExponential(2).padEnd(11)}  ` +
            `${r.lseAbsDiff.toExponential(2).padEnd(9)}  ${r.greedyMatched}/${r.greedyTotal} ${r.greedy}  ${r.pass ? "ok" : "FAIL"}`,
        );
      }
      const failed = results.filter((r) => !r.pass).length;
      console.log(failed ? `${failed} of ${results.length} cases FAILED` : `all ${results.length} cases passed`);
      backend.dispose();
      if (failed) process.exitCode = 1;
    });
}
