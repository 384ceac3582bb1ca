/**
 * `loom bench serve` against the fake server (a concurrency sweep with JSON and HTML out), flag errors, and
 * `loom bench compare` end to end on the bundled tiny model with tiny request counts (it starts five
 * `loom serve` children and must leave none behind).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { BenchReport } from "../../src/bench/types.ts";
import { type FakeServer, startFakeServer } from "./fake-server.ts";

const ENTRY = fileURLToPath(new URL("./bench-cli.ts", import.meta.url));
const BACKEND = process.env.LOOM_TEST_BACKEND ?? "reference";
const dir = mkdtempSync(join(tmpdir(), "loom-bench-cli-"));

function run(args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", ENTRY, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out: ${args.join(" ")}\n${stderr}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let fake: FakeServer;
before(async () => {
  fake = await startFakeServer({ ttftMs: 10, itlMs: 2 });
});
after(async () => {
  await fake?.close();
});

test("bench serve: a concurrency sweep prints vLLM-style results and writes JSON and HTML", async () => {
  const json = join(dir, "sweep.json");
  const html = join(dir, "sweep.html");
  const r = await run([
    "bench",
    "serve",
    "--url",
    `${fake.url}/v1`,
    "--num-prompts",
    "12",
    "--input-len",
    "16",
    "--output-len",
    "6",
    "--range-ratio",
    "0",
    "--concurrency",
    "1,4",
    "--slo",
    "ttft=1000,tpot=500",
    "--json",
    json,
    "--html",
    html,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((r.stdout.match(/Serving Benchmark Result/g) ?? []).length, 2);
  assert.match(r.stdout, /Request goodput \(req\/s\):/);
  assert.match(r.stdout, /Median TTFT \(ms\):/);
  assert.match(r.stdout, /random c=4/);
  // Off a terminal the progress bar prints plain lines.
  assert.match(r.stderr, /random c=1 .*12\/12 requests/);
  const report = JSON.parse(readFileSync(json, "utf8")) as BenchReport;
  assert.equal(report.kind, "serve");
  assert.deepEqual(
    report.runs.map((x) => x.config.concurrency),
    [1, 4],
  );
  for (const x of report.runs) {
    assert.equal(x.summary.completed, 12);
    assert.equal(x.summary.goodRequests, 12);
    assert.equal(x.summary.totalOutputTokens, 72);
    assert.equal(x.config.promptKind, "token ids");
  }
  assert.equal(report.runs[1].summary.maxInFlight, 4);
  assert.ok(existsSync(html));
  assert.match(readFileSync(html, "utf8"), /data-kind="vs-concurrency-output-throughput"/);
});

test("bench serve: multi-turn chat and shared-prefix run; bad flags fail with one line", async () => {
  const mt = await run([
    "bench",
    "serve",
    "--url",
    fake.url,
    "--dataset",
    "multi-turn",
    "--num-prompts",
    "6",
    "--num-turns",
    "3",
    "--input-len",
    "8",
    "--output-len",
    "4",
    "--no-progress",
  ]);
  assert.equal(mt.code, 0, mt.stderr);
  assert.match(mt.stdout, /Successful requests:\s+6/);
  assert.ok(fake.received.some((x) => x.path === "/v1/chat/completions"));

  const sp = await run([
    "bench",
    "serve",
    "--url",
    fake.url,
    "--dataset",
    "shared-prefix",
    "--num-groups",
    "2",
    "--group-size",
    "3",
    "--prefix-len",
    "32",
    "--input-len",
    "8",
    "--output-len",
    "4",
    "--request-rate",
    "50",
    "--no-progress",
  ]);
  assert.equal(sp.code, 0, sp.stderr);
  assert.match(sp.stdout, /Successful requests:\s+6/);
  assert.match(sp.stdout, /Request rate \(req\/s\):\s+50/);

  for (const [args, msg] of [
    [["--concurrency", "0"], /--concurrency takes integers/],
    [["--dataset", "bogus"], /--dataset must be one of/],
    [["--slo", "ttft=abc"], /bad SLO/],
    [["--url", "localhost:8000"], /--url must be an http/],
    [["--concurrency", "1,2", "--request-rate", "1,2"], /either --concurrency or --request-rate/],
  ] as const) {
    const bad = await run(["bench", "serve", "--url", fake.url, ...args]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, msg);
  }
});

test("bench serve: an unreachable server gives failed requests and a non-zero exit", async () => {
  const r = await run(["bench", "serve", "--url", "http://127.0.0.1:1", "--num-prompts", "2", "--no-progress"]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /Failed requests:\s+2/);
  assert.match(r.stdout, /ECONNREFUSED|connect/);
});

test("bench compare: naive / static / continuous and prefix caching on / off, on real loom serve children", {
  timeout: 600_000,
}, async () => {
  const json = join(dir, "compare.json");
  const html = join(dir, "compare.html");
  const r = await run(
    [
      "bench",
      "compare",
      "--backend",
      BACKEND,
      "--num-prompts",
      "3",
      "--input-len",
      "8",
      "--output-len",
      "4",
      "--concurrency",
      "3",
      "--num-groups",
      "1",
      "--group-size",
      "3",
      "--prefix-len",
      "48",
      "--suffix-len",
      "4",
      "--prefix-output-len",
      "2",
      "--prefix-concurrency",
      "1",
      "--warmup",
      "1",
      "--json",
      json,
      "--html",
      html,
      "--",
      "--max-queued-requests",
      "64",
    ],
    540_000,
  );
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const report = JSON.parse(readFileSync(json, "utf8")) as BenchReport;
  assert.deepEqual(
    report.runs.map((x) => x.label),
    ["naive", "static", "continuous", "prefix caching on", "prefix caching off"],
  );
  for (const x of report.runs) {
    assert.equal(x.summary.failed, 0, `${x.label}: ${x.requests.map((q) => q.error).join("; ")}`);
    assert.equal(x.summary.completed, 3);
    // Engine flags given to compare, and flags after --, reach every server.
    assert.match(String(x.config.serveArgs), new RegExp(`--backend ${BACKEND}`));
    assert.match(String(x.config.serveArgs), /--max-queued-requests 64/);
    // Which backend each server really ran is kept (from its "serving …" log line).
    assert.equal(typeof x.config.serverBackend, "string", "serverBackend recorded");
  }
  assert.equal(new Set(report.runs.map((x) => x.config.serverBackend)).size, 1);
  assert.match(String(report.runs[0].config.serveArgs), /--scheduler naive/);
  assert.match(String(report.runs[4].config.serveArgs), /--no-enable-prefix-caching/);
  // With caching on, requests after the first of the group reuse the 48-token prefix (3 full blocks).
  const cached = report.runs[3].requests.map((q) => q.cachedTokens ?? 0);
  assert.ok(cached.filter((c) => c >= 48).length >= 2, `cached tokens ${cached}`);
  assert.ok(report.runs[4].requests.every((q) => (q.cachedTokens ?? 0) === 0));
  const names = report.ratios.map((x) => x.name);
  assert.ok(names.includes("throughput continuous/naive"));
  assert.ok(names.includes("median E2E naive/continuous"));
  assert.ok(names.includes("median TTFT prefix off/on"));
  assert.match(r.stdout, /throughput continuous\/naive/);
  assert.ok(existsSync(html));
  // Every server child was stopped.
  const children = await new Promise<string>((resolve) => {
    const ps = spawn("ps", ["-eo", "args"], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    ps.stdout.on("data", (d) => {
      out += d;
    });
    ps.on("exit", () => resolve(out));
    ps.on("error", () => resolve(""));
  });
  for (const x of report.runs) {
    const port = new URL(String(x.config.url)).port;
    assert.ok(!children.includes(`--port ${port} `), `a loom serve on port ${port} is still running`);
  }
});
