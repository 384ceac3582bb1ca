/** `loom serve` as a process: flags, startup log, request ids in logs, graceful shutdown on SIGTERM / SIGINT. */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/loom.js", import.meta.url));
const BACKEND = process.env.LOOM_TEST_BACKEND ?? "reference";

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** Starts `loom serve` on a free port; resolves once it logs that it serves. */
async function startServe(
  extra: string[] = [],
): Promise<{ child: ChildProcess; url: string; logs: LogLine[]; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, "serve", "--port", "0", "--backend", BACKEND, ...extra], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: LogLine[] = [];
  let stderr = "";
  child.stderr!.on("data", (d) => {
    stderr += d;
  });
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let entry: LogLine;
      try {
        entry = JSON.parse(line);
      } catch {
        return reject(new Error(`non-JSON log line: ${line}`));
      }
      logs.push(entry);
      if (typeof entry.msg === "string" && entry.msg.startsWith("serving ")) {
        clearTimeout(timer);
        resolve(entry.url as string);
      }
    });
    exit.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  return { child, url, logs, exit };
}

test("loom serve --help lists the server flags and the engine flags", () => {
  const r = spawnSync(process.execPath, [BIN, "serve", "--help"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  for (const flag of [
    "--host",
    "--port",
    "--api-key",
    "--max-body-bytes",
    "--max-queued-requests",
    "--shutdown-timeout",
    "--log-level",
    "--model",
    "--backend",
    "--max-num-seqs",
  ]) {
    assert.ok(r.stdout.includes(flag), flag);
  }
});

test("a bad flag value fails with a message", () => {
  const r = spawnSync(process.execPath, [BIN, "serve", "--port", "99999"], { encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--port/);
});

test("startup line, request ids, SIGTERM drains and exits 0", { timeout: 120_000 }, async () => {
  const { child, url, logs, exit } = await startServe(["--shutdown-timeout", "1", "--api-key", "k1"]);
  const ready = logs.find((l) => l.msg.startsWith("serving "))!;
  assert.equal(ready.model, "tiny-llama");
  assert.equal(typeof ready.backend, "string");
  assert.equal(typeof ready.dtype, "string");
  assert.ok((ready.kvCapacityTokens as number) > 0);

  const health = await fetch(`${url}/health`, { headers: { "x-request-id": "probe-1" } });
  assert.equal(health.status, 200);
  assert.equal(health.headers.get("x-request-id"), "probe-1");
  const unauth = await fetch(`${url}/v1/models`, { headers: { "x-request-id": "probe-2" } });
  assert.equal(unauth.status, 401);
  const models = await (await fetch(`${url}/v1/models`, { headers: { authorization: "Bearer k1" } })).json();
  assert.equal(models.data[0].id, "tiny-llama");

  // A request in flight when SIGTERM arrives ends (finished, or aborted after --shutdown-timeout).
  const inflight = fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer k1" },
    body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 2000, ignore_eos: true, stream: true }),
  }).then((r) => r.text());
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  child.kill("SIGTERM");
  assert.equal(await exit, 0);
  assert.ok(Date.now() - t0 < 15_000);
  const text = await inflight;
  assert.match(text, /"finish_reason":"(abort|length)"/);
  assert.ok(text.trimEnd().endsWith("data: [DONE]"));
  assert.ok(logs.some((l) => l.msg === "stopped"));
  assert.ok(logs.some((l) => l.reqId === "probe-2" && l.status === 401));
});

test("SIGINT also shuts down cleanly", { timeout: 120_000 }, async () => {
  const { child, url, exit } = await startServe();
  assert.equal((await fetch(`${url}/health`)).status, 200);
  child.kill("SIGINT");
  assert.equal(await exit, 0);
});
