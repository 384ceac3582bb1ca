/**
 * The load generator and its SSE client against the fake OpenAI server: SSE parsing, per-chunk timestamps,
 * the concurrency limit, Poisson arrivals at the requested rate, failures, time limits, multi-turn chains.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { buildDataset, type DatasetOptions, PromptMaker, type WorkItem } from "../../src/bench/datasets.ts";
import { type LoadOptions, runLoad } from "../../src/bench/load.ts";
import { summarize } from "../../src/bench/metrics.ts";
import { BenchRng } from "../../src/bench/random.ts";
import { apiUrl, SseParser, streamRequest } from "../../src/bench/sse-client.ts";
import type { RequestSpec } from "../../src/bench/types.ts";
import { type FakeServer, type FakeServerOptions, startFakeServer } from "./fake-server.ts";

const servers: FakeServer[] = [];
async function fake(o: FakeServerOptions = {}): Promise<FakeServer> {
  const s = await startFakeServer(o);
  servers.push(s);
  return s;
}
after(async () => {
  for (const s of servers) await s.close();
});

const spec = (p: Partial<RequestSpec> = {}): RequestSpec => ({
  endpoint: "completions",
  prompt: [11, 12, 13, 14],
  promptLen: 4,
  maxTokens: 8,
  ignoreEos: true,
  ...p,
});

function items(n: number, s: Partial<RequestSpec> = {}): WorkItem[] {
  return Array.from({ length: n }, () => ({ turns: 1, build: () => spec(s) }));
}

function load(url: string, o: Partial<LoadOptions>): Promise<Awaited<ReturnType<typeof runLoad>>> {
  return runLoad({
    baseUrl: url,
    items: [],
    concurrency: null,
    requestRate: Number.POSITIVE_INFINITY,
    burstiness: 1,
    rng: new BenchRng(1),
    requestTimeoutMs: 20_000,
    runTimeoutMs: 60_000,
    ...o,
  });
}

test("SseParser: events split anywhere, CRLF, comments, multi-line data, a last event without blank line", () => {
  const p = new SseParser();
  const text = 'data: {"a":1}\n\n: keep-alive\n\ndata: {"b":\ndata: 2}\r\n\r\nevent: x\ndata:[DONE]\n\ndata: tail';
  const got: string[] = [];
  for (let i = 0; i < text.length; i += 3) got.push(...p.push(text.slice(i, i + 3)));
  got.push(...p.flush());
  assert.deepEqual(got, ['{"a":1}', '{"b":\n2}', "[DONE]", "tail"]);
  assert.deepEqual(new SseParser().push("data: x\r\rdata: y\n\n"), ["x", "y"]);
});

test("apiUrl keeps a path prefix and drops a trailing /v1", () => {
  assert.equal(apiUrl("http://h:1", "/v1/completions").href, "http://h:1/v1/completions");
  assert.equal(apiUrl("http://h:1/v1/", "/v1/completions").href, "http://h:1/v1/completions");
  assert.equal(apiUrl("http://h:1/proxy/", "/health").href, "http://h:1/proxy/health");
});

test("streamRequest timestamps each text chunk and reads usage; the body asks for usage and ignore_eos", async () => {
  const s = await fake({ ttftMs: 40, itlMs: 10 });
  const r = await streamRequest(spec({ maxTokens: 6 }), { baseUrl: s.url, model: "fake-model", timeoutMs: 10_000 });
  assert.equal(r.ok, true, r.error);
  assert.equal(r.status, 200);
  assert.equal(r.chunkTimes.length, 6);
  assert.equal(r.usageCompletionTokens, 6);
  assert.equal(r.usagePromptTokens, 4);
  assert.equal(r.finishReason, "length");
  assert.equal(r.text, " w0 w1 w2 w3 w4 w5");
  const ttft = r.chunkTimes[0] - r.start;
  assert.ok(ttft >= 35, `TTFT ${ttft} ms should include the server's 40 ms`);
  // Each chunk has its own arrival time (a loaded machine may deliver two writes in one read: same time).
  for (let i = 1; i < 6; i++) assert.ok(r.chunkTimes[i] >= r.chunkTimes[i - 1]);
  assert.ok(new Set(r.chunkTimes).size >= 2, "chunks are timed as they arrive");
  assert.ok(r.chunkTimes[5] - r.start >= 85, "the last chunk comes ≥ 40 + 5 × 10 ms after the send");
  assert.ok(r.end >= r.chunkTimes[5]);
  const body = s.received[0].body;
  assert.equal(s.received[0].path, "/v1/completions");
  assert.deepEqual(body.prompt, [11, 12, 13, 14]);
  assert.equal(body.max_tokens, 6);
  assert.equal(body.stream, true);
  assert.deepEqual(body.stream_options, { include_usage: true });
  assert.equal(body.ignore_eos, true);
  assert.equal(body.model, "fake-model");
});

test("streamRequest: several events per network chunk with CRLF; chat's empty role chunk is no token", async () => {
  const s = await fake({ ttftMs: 5, itlMs: 5, tokensPerWrite: 4, crlf: true });
  const r = await streamRequest(spec({ maxTokens: 10 }), { baseUrl: s.url, timeoutMs: 10_000 });
  assert.equal(r.ok, true, r.error);
  assert.equal(r.chunkTimes.length, 10);
  // Events that arrive together share a timestamp.
  assert.equal(r.chunkTimes[0], r.chunkTimes[3]);
  const chat = await streamRequest(
    spec({ endpoint: "chat", prompt: undefined, messages: [{ role: "user", content: "hi there" }], maxTokens: 3 }),
    { baseUrl: s.url, timeoutMs: 10_000 },
  );
  assert.equal(chat.ok, true, chat.error);
  assert.equal(chat.chunkTimes.length, 3);
  assert.equal(chat.text, " w0 w1 w2");
  const body = s.received[1].body;
  assert.equal(s.received[1].path, "/v1/chat/completions");
  assert.equal(body.max_completion_tokens, 3);
  assert.deepEqual(body.messages, [{ role: "user", content: "hi there" }]);
});

test("failures come back as records: HTTP errors, errors inside the stream, timeouts, refused connections", async () => {
  const s = await fake({
    ttftMs: 5,
    itlMs: 2,
    failWith: (i) => (i === 1 ? 429 : null),
    breakAfter: (i) => (i === 2 ? 3 : null),
  });
  const res = await load(s.url, { items: items(4), concurrency: 1 });
  assert.equal(res.records.length, 4);
  assert.deepEqual(
    res.records.map((r) => r.ok),
    [true, false, false, true],
  );
  assert.match(res.records[1].error!, /HTTP 429: fake failure 429/);
  assert.match(res.records[2].error!, /error in the stream: fake mid-stream failure/);
  const sum = summarize(res.records, res.duration, {});
  assert.equal(sum.completed, 2);
  assert.equal(sum.failed, 2);

  const slow = await fake({ ttftMs: 2_000 });
  const t = await streamRequest(spec(), { baseUrl: slow.url, timeoutMs: 100 });
  assert.equal(t.ok, false);
  assert.match(t.error!, /timed out after 100 ms/);

  const refused = await streamRequest(spec(), { baseUrl: "http://127.0.0.1:1", timeoutMs: 5_000 });
  assert.equal(refused.ok, false);
  assert.match(refused.error!, /ECONNREFUSED|connect/);
});

test("the concurrency limit holds: never more requests in flight than asked, and it is reached", async () => {
  const s = await fake({ ttftMs: 15, itlMs: 3 });
  const res = await load(s.url, { items: items(30), concurrency: 4 });
  assert.equal(res.records.length, 30);
  assert.ok(res.records.every((r) => r.ok));
  assert.equal(s.maxInFlight, 4, "server-side peak");
  assert.equal(res.maxInFlight, 4, "client-side peak");
  // Requests queued for a slot: later ones waited, and TTFT is measured from the send (not the arrival).
  assert.ok(res.records.some((r) => r.queueWait > 20));
  assert.ok(res.records.every((r) => r.ttft < 1_000));
  assert.deepEqual(
    res.records.map((r) => r.item),
    [...Array(30).keys()],
  );

  const s2 = await fake({ ttftMs: 60, itlMs: 3 });
  const all = await load(s2.url, { items: items(12), concurrency: null });
  assert.equal(s2.maxInFlight, 12, "no limit: everything in flight at once");
  assert.equal(all.maxInFlight, 12);
});

test("Poisson arrivals: requests are sent at the planned times, at about the requested rate", async () => {
  const s = await fake({ ttftMs: 2, itlMs: 1 });
  const rate = 40;
  const n = 40;
  const res = await load(s.url, { items: items(n, { maxTokens: 2 }), requestRate: rate, rng: new BenchRng(3) });
  assert.equal(res.records.length, n);
  assert.ok(res.records.every((r) => r.ok));
  const planned = res.arrivals;
  const span = planned[n - 1] / 1000;
  const plannedRate = (n - 1) / span;
  assert.ok(plannedRate > rate * 0.65 && plannedRate < rate * 1.5, `planned rate ${plannedRate}/s for ${rate}/s`);
  // Sends follow the plan (the machine is noisy: a generous bound on lateness, none on earliness).
  const sends = res.records.map((r) => r.start);
  for (let i = 0; i < n; i++) {
    assert.ok(sends[i] >= planned[i] - 1, `request ${i} sent before its arrival time`);
    assert.ok(sends[i] - planned[i] < 250, `request ${i} sent ${sends[i] - planned[i]} ms late`);
  }
  const at = s.received.map((r) => r.at);
  const measured = (n - 1) / ((at[n - 1] - at[0]) / 1000);
  assert.ok(
    Math.abs(measured - plannedRate) / plannedRate < 0.25,
    `server saw ${measured}/s, planned ${plannedRate}/s`,
  );
});

test("the run time limit stops sending and aborts what is in flight", async () => {
  const s = await fake({ ttftMs: 80, itlMs: 20 });
  const t0 = performance.now();
  const res = await load(s.url, { items: items(20, { maxTokens: 5 }), concurrency: 2, runTimeoutMs: 300 });
  const took = performance.now() - t0;
  assert.ok(took < 2_000, `stopped after ${took} ms`);
  assert.equal(res.stopped, true);
  assert.equal(res.records.length, 20, "every request has a record");
  const ok = res.records.filter((r) => r.ok).length;
  assert.ok(ok >= 1 && ok < 20, `${ok} finished`);
  assert.ok(res.records.some((r) => /not sent/.test(r.error ?? "")));
  assert.ok(s.received.length < 20);

  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  const cut = await load(s.url, { items: items(10), concurrency: 1, signal: ac.signal });
  assert.equal(cut.stopped, true);
  assert.ok(cut.records.some((r) => r.error === "aborted" || /not sent/.test(r.error ?? "")));
});

test("multi-turn: each turn follows the previous answer and carries the conversation so far", async () => {
  const s = await fake({ ttftMs: 5, itlMs: 2 });
  const maker = PromptMaker.fromTokenization(null);
  const o: DatasetOptions = {
    numPrompts: 6,
    inputLen: 8,
    outputLen: 3,
    rangeRatio: 0,
    numGroups: 1,
    groupSize: 1,
    prefixLen: 1,
    numTurns: 3,
    endpoint: "chat",
    ignoreEos: true,
  };
  const conv = buildDataset("multi-turn", o, maker, new BenchRng(5));
  assert.equal(conv.length, 2);
  const res = await load(s.url, { items: conv, concurrency: 2 });
  assert.equal(res.records.length, 6);
  assert.ok(res.records.every((r) => r.ok));
  for (const c of [0, 1]) {
    const turns = res.records.filter((r) => r.item === c).sort((a, b) => a.turn - b.turn);
    for (let t = 1; t < 3; t++) {
      assert.ok(
        turns[t].start >= turns[t - 1].start + turns[t - 1].latency - 1,
        "a turn waits for the previous answer",
      );
    }
  }
  const chats = s.received.map((r) => r.body.messages as { role: string; content: string }[]);
  const lengths = chats.map((m) => m.length).sort();
  assert.deepEqual(lengths, [1, 1, 3, 3, 5, 5]);
  for (const m of chats.filter((x) => x.length === 5)) {
    assert.deepEqual(
      m.map((x) => x.role),
      ["user", "assistant", "user", "assistant", "user"],
    );
    assert.equal(m[1].content, " w0 w1 w2", "the server's answer is sent back");
    assert.equal(m[3].content, " w0 w1 w2");
    // The first user turn is the same one the first request sent.
    assert.ok(chats.some((x) => x.length === 1 && x[0].content === m[0].content));
  }
});
