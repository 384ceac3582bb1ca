/**
 * The `loom` command line. Each command lives in its own file and registers itself here.
 * Errors a user can cause print one line (no stack unless --debug) and exit non-zero.
 */
import { Command } from "commander";
import { registerBench } from "./bench.ts";
import { registerChat } from "./chat.ts";
import { registerConvert } from "./convert.ts";
import { registerGenerate } from "./generate.ts";
import { registerServe } from "./serve.ts";
import { registerValidate } from "./validate.ts";

export async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name("loom")
    .description("Loom: a self-hosted LLM inference engine and OpenAI-compatible server")
    .option("--debug", "print stack traces on errors")
    .showHelpAfterError();
  registerServe(program);
  registerGenerate(program);
  registerChat(program);
  registerValidate(program);
  registerBench(program);
  registerConvert(program);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const err = e as Error;
    if (argv.includes("--debug")) console.error(err);
    else console.error(`loom: ${err.message.split("\n")[0]}`);
    process.exitCode = 1;
  }
}
