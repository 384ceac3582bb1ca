/** Starting (503 until the engine is ready), client aborts freeing KV blocks, drain and close. */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { connect } from "node:net";
import { test } from "node:test";
import { startServer } from "../../src/server/index.ts";
import { SseWriter } from "../../src/server/sse.ts";
import { FakeEngine } from "./fake-engine.ts";
import { expectError, metric, postJson, readSse, serveFake, waitFor, withExtras } from "./helpers.ts";

test("503 while the engine loads, then ready", async () => {
  let resolve!: (e: FakeEngine) => void;
  const loading = new Promise<FakeEngine>((r) => {
    resolve = r;
  });
  const server = await startServer(loading, { port: 0, defaultMetrics: false });
  const engine = await FakeEngine.create();
  try {
    assert.equal(server.state, "starting");
    const h = await expectError(await fetch(`${server.url}/health`), 503);
    assert.equal(h.code, "starting");
    await expectError(await postJson(`${server.url}/v1/completions`, { prompt: "a" }), 503);
    await expectError(await fetch(`${server.url}/v1/models`), 503);
    assert.equal((await fetch(`${server.url}/metrics`)).status, 200);
    resolve(engine);
    await server.ready;
    assert.equal(server.state, "ready");
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  } finally {
    await server.close();
    await engine.close();
  }
});

test("ready rejects when the engine fails to load", async () => {
  const server = await startServer(Promise.reject(new Error("no such model")), { port: 0, defaultMetrics: false });
  try {
    await assert.rejects(server.ready, /no such model/);
    await expectError(await fetch(`${server.url}/health`), 503);
  } finally {
    await server.close();
  }
});

test("aborting a stream mid-way frees its KV blocks", async () => {
  const s = await serveFake({ tokenDelayMs: 10 });
  try {
    const stream = await s.client.completions.create(
      withExtras(
        { model: "tiny-llama", prompt: "A long story", max_tokens: 1000, stream: true as const },
        { ignore_eos: true },
      ),
    );
    let chunks = 0;
    for await (const _ of stream) {
      if (++chunks === 5) {
        assert.ok(((await metric(s.url, "loom_kv_blocks_used")) ?? 0) > 0, "blocks in use while streaming");
        assert.equal(await metric(s.url, "vllm:num_requests_running"), 1);
        stream.controller.abort();
        break;
      }
    }
    await waitFor(async () => (await metric(s.url, "loom_kv_blocks_used")) === 0, 3000, "blocks freed");
    assert.equal(await metric(s.url, "vllm:kv_cache_usage_perc"), 0);
    assert.equal(await metric(s.url, "vllm:num_requests_running"), 0);
    assert.equal(await metric(s.url, "vllm:request_success_total", { finished_reason: "abort" }), 1);
    assert.equal(await metric(s.url, "loom_client_disconnects_total", { route: "/v1/chat/completions" }), null);
    assert.equal(await metric(s.url, "loom_client_disconnects_total", { route: "/v1/completions" }), 1);
  } finally {
    await s.close();
  }
});

test("a non-streaming client that disconnects aborts its request too", async () => {
  const s = await serveFake({ tokenDelayMs: 10 });
  try {
    const ac = new AbortController();
    const p = postJson(`${s.url}/v1/chat/completions`, {
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 1000,
    }).catch(() => null);
    void p;
    const req = fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "hello", max_tokens: 1000 }),
      signal: ac.signal,
    }).catch((e: Error) => e);
    await waitFor(() => s.engine.numRunning === 2, 3000, "both running");
    ac.abort();
    assert.ok((await req) instanceof Error);
    await waitFor(() => s.engine.numRunning === 1, 3000, "the aborted one gone");
    const stats = await s.engine.stats();
    assert.equal(stats.finished.abort, 1);
  } finally {
    await s.close();
  }
});

test("drain: in-flight requests finish, the rest are aborted at the timeout, new requests get 503", async () => {
  const s = await serveFake({ tokenDelayMs: 10 });
  try {
    const short = postJson(`${s.url}/v1/completions`, { prompt: "short", max_tokens: 5 }).then((r) => r.json());
    const long = postJson(`${s.url}/v1/completions`, { prompt: "long", max_tokens: 2000, stream: true });
    const longNonStream = postJson(`${s.url}/v1/chat/completions`, {
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2000,
    });
    // A keep-alive connection with a streaming request in flight; a pipelined request sent on it after the
    // drain started must be answered 503.
    const sock = connect(s.server.port, "127.0.0.1");
    let raw = "";
    sock.on("data", (d) => {
      raw += d.toString();
    });
    const body = JSON.stringify({ prompt: "pipelined", max_tokens: 2000, stream: true });
    sock.write(
      `POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    await waitFor(() => raw.includes("data: "), 3000, "the pipelined stream to start");
    await waitFor(() => s.engine.numRunning === 4, 3000, "all running");

    const drained = s.server.drain(300);
    assert.equal(s.server.state, "draining");
    sock.write("GET /health HTTP/1.1\r\nhost: x\r\n\r\n");
    // No new connections.
    await assert.rejects(fetch(`${s.url}/health`));

    await drained;
    assert.equal(s.server.state, "closed");
    const shortBody = await short;
    assert.equal(shortBody.choices[0].finish_reason, "length");
    const events = await readSse(await long);
    assert.equal(events.at(-1), "[DONE]");
    assert.equal(JSON.parse(events.at(-2)!).choices[0].finish_reason, "abort");
    const chat = await (await longNonStream).json();
    assert.equal(chat.choices[0].finish_reason, "abort");
    assert.ok(chat.usage.completion_tokens > 0);

    await waitFor(() => raw.includes("HTTP/1.1 503"), 2000, "503 on the kept-alive connection");
    assert.match(raw, /"finish_reason":"abort"/);
    assert.match(raw, /"code":"shutting_down"/);
    sock.destroy();
    assert.equal((await s.engine.stats()).kvBlocksUsed, 0);
  } finally {
    await s.close();
  }
});

test("close() aborts at once and is idempotent", async () => {
  const s = await serveFake({ tokenDelayMs: 10 });
  const stream = await s.client.chat.completions.create({
    model: "tiny-llama",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 2000,
    stream: true,
  });
  const reasons: string[] = [];
  const reading = (async () => {
    for await (const chunk of stream) if (chunk.choices[0]?.finish_reason) reasons.push(chunk.choices[0].finish_reason);
  })();
  await waitFor(() => s.engine.numRunning === 1, 3000, "running");
  const t0 = Date.now();
  await Promise.all([s.server.close(), s.server.close()]);
  assert.ok(Date.now() - t0 < 2000);
  await reading;
  assert.deepEqual(reasons, ["abort"]);
  await s.close();
});

test("SSE writer: a write blocked on a client that stopped reading ends when the client goes away", async () => {
  let lastProgress = 0;
  let sends = 0;
  let loop: Promise<boolean> | null = null;
  const server = createServer((_req, res) => {
    const sse = new SseWriter(res);
    sse.start();
    loop = (async () => {
      const payload = "x".repeat(64 * 1024);
      // Keeps writing; once the kernel buffers are full a send waits for drain or close.
      while (await sse.send(payload)) {
        sends++;
        lastProgress = Date.now();
      }
      return sse.open;
    })();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const sock = connect((server.address() as { port: number }).port, "127.0.0.1");
  try {
    sock.write("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    sock.pause(); // never read
    await waitFor(() => loop !== null && sends > 0 && Date.now() - lastProgress > 300, 10_000, "the writes to block");
    const blockedAt = sends;
    sock.destroy();
    const t0 = Date.now();
    assert.equal(await loop!, false);
    assert.ok(Date.now() - t0 < 2000, "the blocked write returned promptly");
    assert.equal(sends, blockedAt);
  } finally {
    sock.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
