/** `loom convert MODEL_DIR OUT.gguf --type f16`: write a Hugging Face model folder as a GGUF file for llama.cpp. */
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { convertToGguf, EXPORT_TYPES, type ExportType } from "../formats/gguf/export.ts";

export function registerConvert(program: Command): void {
  program
    .command("convert")
    .description("convert a Hugging Face model folder to a GGUF file (loadable by llama.cpp and by loom)")
    .argument("<model-dir>", "Hugging Face model folder (config.json, tokenizer.json, *.safetensors)")
    .argument("<out>", "the GGUF file to write")
    .option("--type <t>", `tensor type of the weight matrices: ${EXPORT_TYPES.join(" | ")}`, "f16")
    .action(async (modelDir: string, out: string, o: { type: string }) => {
      const type = o.type.toLowerCase();
      if (!(EXPORT_TYPES as readonly string[]).includes(type)) {
        throw new Error(`--type must be one of ${EXPORT_TYPES.join(", ")} (got "${o.type}")`);
      }
      // A bar only on a terminal; piped output gets the summary line alone.
      const bar = process.stderr.isTTY
        ? new cliProgress.SingleBar(
            {
              stream: process.stderr,
              format: "converting [{bar}] {percentage}% | {value}/{total} tensors | {name}",
              hideCursor: true,
              clearOnComplete: true,
            },
            cliProgress.Presets.shades_classic,
          )
        : null;
      let started = false;
      const t0 = performance.now();
      try {
        const result = await convertToGguf(modelDir, out, {
          type: type as ExportType,
          log: (line) => {
            if (bar && started) bar.stop();
            started = false;
            console.error(line);
          },
          onProgress: (p) => {
            if (!bar) return;
            if (!started) {
              bar.start(p.total, p.done - 1, { name: p.name });
              started = true;
            }
            bar.update(p.done, { name: p.name });
          },
        });
        if (bar && started) bar.stop();
        const mb = (result.bytes / 1e6).toFixed(1);
        const secs = ((performance.now() - t0) / 1000).toFixed(1);
        console.log(
          `wrote ${result.path}: ${result.architecture}, ${result.tensors} tensors, ${type}, ${mb} MB in ${secs} s`,
        );
      } catch (e) {
        if (bar && started) bar.stop();
        throw e;
      }
    });
}
