/**
 * Runs `loom bench …` through registerBench alone (tests use it so they do not depend on the main CLI's
 * command list): `node --import tsx test/bench/bench-cli.ts bench serve --url …`.
 */
import { Command } from "commander";
import { registerBench } from "../../src/cli/bench.ts";

const program = new Command().name("loom").showHelpAfterError();
registerBench(program);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  console.error(`loom: ${(e as Error).message.split("\n")[0]}`);
  process.exitCode = 1;
}
