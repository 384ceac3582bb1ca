/** `loom chat`: an interactive multi-turn chat on the terminal. */
import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { addEngineFlags, engineOptionsFrom } from "../engine/options.ts";
import type { ChatMessage } from "../engine/types.ts";
import { addSamplingFlags, samplingFrom } from "./sampling-flags.ts";

export function registerChat(program: Command): void {
  const cmd = program
    .command("chat")
    .description("chat with the model on the terminal (/reset clears the history, /exit or Ctrl-D quits)")
    .option("--system <text>", "system message");
  addSamplingFlags(cmd);
  addEngineFlags(cmd).action(async (o) => {
    const { createEngine } = await import("../engine/engine-client.ts");
    const engine = await createEngine(engineOptionsFrom(o), { info() {}, warn: (m) => console.error(`warning: ${m}`) });
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
    const history: ChatMessage[] = o.system ? [{ role: "system", content: o.system }] : [];
    console.log(`loom chat — ${engine.info.modelName} on ${engine.info.backend}. /reset clears, /exit quits.`);
    try {
      process.stdout.write("> ");
      for await (const line of rl) {
        const text = line.trim();
        if (text === "/exit" || text === "/quit") break;
        if (text === "/reset") {
          history.splice(o.system ? 1 : 0);
        } else if (text) {
          await reply(text);
        }
        process.stdout.write("> ");
      }
    } finally {
      rl.close();
      await engine.close();
    }

    async function reply(text: string): Promise<void> {
      history.push({ role: "user", content: text });
      let answer = "";
      for await (const d of engine.generate({ messages: history }, samplingFrom(o))) {
        process.stdout.write(d.text);
        answer += d.text;
      }
      process.stdout.write("\n");
      history.push({ role: "assistant", content: answer });
    }
  });
}
