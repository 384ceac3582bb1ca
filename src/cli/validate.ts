/** `loom validate`: recompute a reference file's logits and greedy ids and compare (see models/validate.ts). */
import type { Command } from "commander";
import { KV_ELEMENT_BYTES, type KvDType, type StorageDType } from "../backends/backend.ts";
import { selectBackend } from "../backends/select.ts";
import { DEFAULT_MODEL, deviceOption } from "../engine/options.ts";
import { loadModel } from "../models/model.ts";
import { quantQuality } from "../models/quant-quality.ts";
import { type RefFile, readRefFile, validateAll } from "../models/validate.ts";

const KV_DTYPES: readonly string[] = Object.keys(KV_ELEMENT_BYTES);

export function registerValidate(program: Command): void {
  program
    .command("validate")
    .description("compare this engine's logits and greedy outputs with a reference file (transformers refs format)")
    .requiredOption("--refs <file>", "reference JSON (its .logits.safetensors must sit beside it)")
    .option("--model <dir>", "model folder", DEFAULT_MODEL)
    .option("--tolerance <x>", "max allowed |Δ| of logits and log-sum-exp", Number.parseFloat, 1e-3)
    .option("--backend <name>", "auto | cpu | reference | cuda", "auto")
    .option("--device <d>", "cuda, cuda:N or cpu (picks the backend), or a CUDA device ordinal N")
    .option("--dtype <t>", "weight storage: f32 | bf16 | int8 | int4 (default: f32)", "f32")
    .option("--kv-cache-dtype <t>", "KV cache: f32 | bf16 | f16 | int8 (default: f32)", "f32")
    .option("--threads <n>", "threads for the cpu backend", (v) => Number.parseInt(v, 10))
    .option(
      "--max-kl <x>",
      "int8/int4: fail when the mean KL divergence from the f32 weights exceeds this (nats)",
      Number.parseFloat,
    )
    .addHelpText(
      "after",
      "\nWith --dtype int8|int4 the quantized model is compared with its own f32 weights on the refs prompts:\n" +
        "top-1 agreement and mean KL(p_f32 ‖ p_quant) over the whole vocabulary at every prompt position.",
    )
    .action(async (o) => {
      if (!(o.tolerance > 0)) throw new Error(`--tolerance must be a positive number`);
      if (!KV_DTYPES.includes(o.kvCacheDtype)) {
        throw new Error(`--kv-cache-dtype must be one of ${KV_DTYPES.join(", ")}, got "${o.kvCacheDtype}"`);
      }
      const refs = readRefFile(o.refs);
      const { backend: name, device } = deviceOption(o.backend, o.device);
      const { backend, warning } = await selectBackend(name, o.threads, device);
      if (warning) console.error(`warning: ${warning}`);
      const longest = Math.max(...refs.cases.map((c) => c.prompt_ids.length + c.greedy_ids.length));
      const blockSize = 16;
      const load = (storage: StorageDType) =>
        loadModel(o.model, backend, {
          maxTokens: Math.max(...refs.cases.map((c) => c.prompt_ids.length)),
          numBlocks: Math.ceil(longest / blockSize) + 1,
          blockSize,
          storage,
          kvDtype: o.kvCacheDtype as KvDType,
        });
      if (o.dtype === "int8" || o.dtype === "int4") {
        reportQuantized(refs, load("f32").graph, load(o.dtype), o.maxKl);
        backend.dispose();
        return;
      }
      const model = load(o.dtype as StorageDType);
      console.log(
        `model ${model.dir} on ${backend.describe()}, weights ${o.dtype}, KV cache ${o.kvCacheDtype}, tolerance ${o.tolerance}`,
      );
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

function reportQuantized(
  refs: RefFile,
  f32: Parameters<typeof quantQuality>[0],
  quant: ReturnType<typeof loadModel>,
  maxKl: number | undefined,
): void {
  console.log(`model ${quant.dir} on ${f32.backend.describe()}: quantized weights vs the same model in f32`);
  const q = quantQuality(f32, quant.graph, refs.cases);
  const pad = Math.max(4, ...q.cases.map((c) => c.name.length));
  console.log(`${"case".padEnd(pad)}  positions  top-1 agree  mean KL    max KL`);
  for (const c of q.cases) {
    console.log(
      `${c.name.padEnd(pad)}  ${String(c.positions).padStart(9)}  ${`${c.top1Agree}/${c.positions}`.padStart(11)}  ` +
        `${c.meanKl.toExponential(2).padEnd(9)}  ${c.maxKl.toExponential(2)}`,
    );
  }
  console.log(
    `overall: top-1 agreement ${(100 * q.top1Agreement).toFixed(1)}% over ${q.positions} positions, ` +
      `mean KL ${q.meanKl.toExponential(2)} nats, max ${q.maxKl.toExponential(2)}`,
  );
  if (maxKl !== undefined && q.meanKl > maxKl) {
    console.log(`FAILED: mean KL above --max-kl ${maxKl}`);
    process.exitCode = 1;
  }
}
