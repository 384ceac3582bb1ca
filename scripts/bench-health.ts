/**
 * Is the HTTP side responsive while the engine is saturated? Starts the real engine + server in a child
 * process (random port, 127.0.0.1 only), fills every sequence slot plus a waiting queue with streaming
 * requests (ignore_eos, large max_tokens), then samples GET /health latency and prints p50 / p99 / max.
 *
 *   node --import tsx scripts/bench-health.ts [--backend auto|cpu|reference] [--max-num-seqs 8]
 *        [--extra-streams 8] [--samples 500] [--interval-ms 10] [--fake]
 *
 * --fake uses the tests' FakeEngine (no model compute) to check the script itself. Bounded in time: the
 * whole run is killed after --deadline-s (default 300) seconds.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    child: { type: "boolean", default: false },
    fake: { type: "boolean", default: false },
    backend: { type: "string", default: "auto" },
    model: { type: "string" },
    "max-num-seqs": { type: "string", default: "8" },
    "extra-streams": { type: "string", default: "8" },
    samples: { type: "string", default: "500" },
    "interval-ms": { type: "string", default: "10" },
    "max-tokens": { type: "string", default: "1500" },
    "saturate-timeout-s": { type: "string", default: "120" },
    "deadline-s": { type: "string", default: "300" },
  },
});

const maxNumSeqs = Number(args["max-num-seqs"]);

// ---------------------------------------------------------------------------------------------- child

async function child(): Promise<void> {
  const { startServer } = await import("../src/server/index.ts");
  let engine: import("../src/engine/engine.ts").Engine;
  if (args.fake) {
    const { FakeEngine } = await import("../test/server/fake-engine.ts");
    engine = await FakeEngine.create({ tokenDelayMs: 5, maxRunning: maxNumSeqs });
  } else {
    const { createEngine } = await import("../src/engine/engine-client.ts");
    const { DEFAULT_ENGINE_OPTIONS } = await import("../src/engine/options.ts");
    engine = await createEngine({
      ...DEFAULT_ENGINE_OPTIONS,
      ...(args.model ? { model: args.model } : {}),
      backend: args.backend as "auto" | "cpu" | "reference",
      maxNumSeqs,
    });
  }
  const server = await startServer(engine, { host: "127.0.0.1", port: 0, maxQueuedRequests: 100_000 });
  await server.ready;
  const stop = async () => {
    await server.drain(0);
    await engine.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("disconnect", () => void stop());
  process.stdout.write(`READY ${server.url} ${JSON.stringify(engine.info)}\n`);
}

// --------------------------------------------------------------------------------------------- parent

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

async function gauge(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function parent(): Promise<void> {
  const deadline = setTimeout(() => {
    console.error("bench-health: deadline reached; giving up");
    proc.kill("SIGKILL");
    process.exit(2);
  }, Number(args["deadline-s"]) * 1000);

  const script = fileURLToPath(import.meta.url);
  const passThrough = process.argv.slice(2);
  const proc = spawn(process.execPath, ["--import", "tsx", script, "--child", ...passThrough], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const ready = await new Promise<{ url: string; info: Record<string, unknown> }>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      const m = /^READY (\S+) (.*)$/.exec(line);
      if (m) resolve({ url: m[1], info: JSON.parse(m[2]) });
    });
    proc.on("exit", (code) => reject(new Error(`server process exited with ${code}`)));
  });
  const { url, info } = ready;
  console.log(`server ${url}: ${info.modelName}, backend ${info.backend}, max-num-seqs ${maxNumSeqs}`);

  // Saturate: every slot plus a queue, streaming.
  const numStreams = maxNumSeqs + Number(args["extra-streams"]);
  const ac = new AbortController();
  let chunks = 0;
  const streams = Array.from({ length: numStreams }, async (_, i) => {
    try {
      const res = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          prompt: `Story number ${i}: once upon a time`,
          max_tokens: Number(args["max-tokens"]),
          ignore_eos: true,
          temperature: 1,
          stream: true,
        }),
        signal: ac.signal,
      });
      for await (const piece of res.body!) {
        void piece;
        chunks++;
      }
    } catch {
      // aborted at the end
    }
  });

  const satDeadline = Date.now() + Number(args["saturate-timeout-s"]) * 1000;
  let running = 0;
  let waiting = 0;
  while (Date.now() < satDeadline) {
    running = await gauge(url, "vllm:num_requests_running");
    waiting = await gauge(url, "vllm:num_requests_waiting");
    if (running >= maxNumSeqs && waiting > 0 && chunks > numStreams) break;
    await sleep(100);
  }
  const saturated = running >= maxNumSeqs && waiting > 0;
  console.log(
    `${saturated ? "saturated" : "NOT saturated"}: running ${running}, waiting ${waiting}, ${chunks} stream chunks so far`,
  );

  // Sample /health.
  const samples = Number(args.samples);
  const interval = Number(args["interval-ms"]);
  const lat: number[] = [];
  let failures = 0;
  const chunksBefore = chunks;
  const t0 = performance.now();
  for (let i = 0; i < samples; i++) {
    const start = performance.now();
    try {
      const res = await fetch(`${url}/health`);
      await res.arrayBuffer();
      if (res.status !== 200) failures++;
    } catch {
      failures++;
    }
    lat.push(performance.now() - start);
    const next = t0 + (i + 1) * interval;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
  }
  const seconds = (performance.now() - t0) / 1000;
  const endRunning = await gauge(url, "vllm:num_requests_running");
  const endWaiting = await gauge(url, "vllm:num_requests_waiting");
  lat.sort((a, b) => a - b);
  const fmt = (x: number) => x.toFixed(2);
  console.log(
    `during sampling: ${chunks - chunksBefore} stream chunks in ${seconds.toFixed(1)}s; at the end running ${endRunning}, waiting ${endWaiting}`,
  );
  console.log(
    `GET /health x${lat.length} (${failures} failed): p50 ${fmt(percentile(lat, 50))} ms, p99 ${fmt(percentile(lat, 99))} ms, max ${fmt(lat.at(-1)!)} ms`,
  );
  const p99 = percentile(lat, 99);
  console.log(p99 < 50 ? "OK: p99 < 50 ms" : "SLOW: p99 >= 50 ms");

  ac.abort();
  await Promise.allSettled(streams);
  proc.kill("SIGTERM");
  await new Promise((r) => proc.once("exit", r));
  clearTimeout(deadline);
  process.exit(failures === 0 && saturated ? 0 : 1);
}

if (args.child) await child();
else await parent();
