/**
 * Child process of close-busy.test.ts (not a test file itself): closes an engine on the native CPU backend
 * while it decodes 16 streams, then exits at once as a server's shutdown does. Prints "ok" when it got that
 * far; an abort of the process (SIGABRT, "terminate called after throwing an instance of 'Napi::Error'") is
 * what the test guards against.
 */
import { createEngine } from "../../src/engine/engine-client.ts";
import { DEFAULT_ENGINE_OPTIONS } from "../../src/engine/options.ts";

const engine = await createEngine({ ...DEFAULT_ENGINE_OPTIONS, backend: "cpu", maxNumSeqs: 8 });
const streams: Promise<void>[] = [];
for (let i = 0; i < 16; i++) {
  streams.push(
    (async () => {
      let n = 0;
      try {
        const params = { maxTokens: 1500, ignoreEos: true, temperature: 0.8 };
        for await (const _d of engine.generate({ text: `In the beginning ${i}` }, params)) n++;
      } catch {
        // aborted by close()
      }
      if (i === 0) console.log("deltas", n);
    })(),
  );
}
// close while the engine thread is busy decoding, at a different point of the step loop in each run
await new Promise((resolve) => setTimeout(resolve, 300 + Math.random() * 700));
await engine.close();
console.log("ok");
process.exit(0);
