/** Shared helpers of the server tests: a server on a random port over a FakeEngine, and HTTP utilities. */
import assert from "node:assert/strict";
import OpenAI from "openai";
import type { Engine } from "../../src/engine/engine.ts";
import { type RunningServer, type ServerOptions, startServer } from "../../src/server/index.ts";
import { FakeEngine, type FakeEngineOptions } from "./fake-engine.ts";

export interface TestServer<E extends Engine = FakeEngine> {
  engine: E;
  server: RunningServer;
  url: string;
  client: OpenAI;
  close(): Promise<void>;
}

export async function serveEngine<E extends Engine>(engine: E, opts: ServerOptions = {}): Promise<TestServer<E>> {
  const server = await startServer(engine, { port: 0, defaultMetrics: false, ...opts });
  await server.ready;
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: opts.apiKey ?? "x", maxRetries: 0 });
  return {
    engine,
    server,
    url: server.url,
    client,
    async close() {
      await server.close();
    },
  };
}

export async function serveFake(engineOpts: FakeEngineOptions = {}, opts: ServerOptions = {}): Promise<TestServer> {
  const engine = await FakeEngine.create(engineOpts);
  const s = await serveEngine(engine, opts);
  return {
    ...s,
    async close() {
      await s.server.close();
      await engine.close();
    },
  };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: (typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body)) as BodyInit,
  });
}

/** Adds vLLM extension fields (ignore_eos...) to an openai client request body; the client sends them as is. */
export function withExtras<T extends object>(body: T, extras: Record<string, unknown>): T {
  return { ...body, ...extras };
}

/** Asserts `res` is an OpenAI-shaped error with `status`; returns the error object. */
export async function expectError(
  res: Response,
  status: number,
  param?: string | null,
): Promise<{ message: string; type: string; param: string | null; code: string | null }> {
  const text = await res.text();
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${text}`);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  const body = JSON.parse(text);
  assertErrorShape(body);
  if (param !== undefined) assert.equal(body.error.param, param, text);
  return body.error;
}

export function assertErrorShape(body: unknown): void {
  const b = body as { error?: Record<string, unknown> };
  assert.ok(b && typeof b.error === "object" && b.error !== null, `not an error body: ${JSON.stringify(body)}`);
  assert.deepEqual(Object.keys(b.error).sort(), ["code", "message", "param", "type"]);
  assert.equal(typeof b.error.message, "string");
  assert.ok((b.error.message as string).length > 0);
  assert.equal(typeof b.error.type, "string");
  assert.ok(b.error.param === null || typeof b.error.param === "string");
  assert.ok(b.error.code === null || typeof b.error.code === "string");
}

/** Reads a `text/event-stream` body into its `data:` payloads. */
export async function readSse(res: Response): Promise<string[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((e) => e.trim() !== "")
    .map((e) => {
      assert.ok(e.startsWith("data: "), `bad event ${JSON.stringify(e)}`);
      return e.slice("data: ".length);
    });
}

/** Value of one metric sample (first match of `name{...labels}`) from /metrics. */
export async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number | null> {
  const text = await (await fetch(`${url}/metrics`)).text();
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([^{\s]+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ok = Object.entries(labels).every(([k, v]) => (m[2] ?? "").includes(`${k}="${v}"`));
    if (ok) return Number(m[3]);
  }
  return null;
}

/** Polls `fn` until it returns true (or fails after `timeoutMs`). */
export async function waitFor(
  fn: () => Promise<boolean> | boolean,
  timeoutMs = 5000,
  what = "condition",
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}
