/** Sampling flags shared by `generate` and `chat`. */
import type { Command } from "commander";
import type { SamplingParams } from "../engine/types.ts";

const num = (v: string) => Number(v);

export function addSamplingFlags(cmd: Command): Command {
  return cmd
    .option("--temperature <t>", "sampling temperature (0 = greedy)", num, 0)
    .option("--top-p <p>", "nucleus sampling", num, 1)
    .option("--top-k <k>", "top-k sampling (0 = off)", num, 0)
    .option("--max-tokens <n>", "most tokens to generate", num, 256)
    .option("--seed <n>", "random seed", num);
}

export function samplingFrom(o: Record<string, unknown>): Partial<SamplingParams> {
  return {
    temperature: o.temperature as number,
    topP: o.topP as number,
    topK: o.topK as number,
    maxTokens: o.maxTokens as number,
    seed: typeof o.seed === "number" ? o.seed : null,
  };
}
