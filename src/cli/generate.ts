/** `loom generate "prompt"`: stream one completion to stdout. */
import type { Command } from "commander";
import { addEngineFlags, engineOptionsFrom } from "../engine/options.ts";
import type { Prompt } from "../engine/types.ts";
import { addSamplingFlags, samplingFrom } from "./sampling-flags.ts";

export function registerGenerate(program: Command): void {
  const cmd = program
    .command("generate")
    .description("generate a completion for a prompt and stream it to stdout")
    .argument("<prompt>", "the prompt text")
    .option("--chat", "apply the model's chat template (the prompt is one user message)")
    .option("--system <text>", "system message (with --chat)");
  addSamplingFlags(cmd);
  addEngineFlags(cmd).action(async (prompt: string, o) => {
    const { createEngine } = await import("../engine/engine-client.ts");
    const engine = await createEngine(engineOptionsFrom(o), { info() {}, warn: (m) => console.error(`warning: ${m}`) });
    try {
      const p: Prompt = o.chat
        ? {
            messages: [...(o.system ? [{ role: "system", content: o.system }] : []), { role: "user", content: prompt }],
          }
        : { text: prompt };
      for await (const d of engine.generate(p, samplingFrom(o))) process.stdout.write(d.text);
      process.stdout.write("\n");
    } finally {
      await engine.close();
    }
  });
}
