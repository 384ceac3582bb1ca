/** The OpenAI-compatible endpoints, through a real server on a random port over the FakeEngine. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { postJson, readSse, serveFake, type TestServer } from "./helpers.ts";

let s: TestServer;
before(async () => {
  s = await serveFake({ tokenDelayMs: 1 });
});
after(async () => {
  await s?.close();
});

const PROMPT = "Once upon a time";

describe("completions", () => {
  test("non-streaming: OpenAI shape and usage", async () => {
    const r = await s.client.completions.create({ model: "tiny-llama", prompt: PROMPT, max_tokens: 5, temperature: 0 });
    assert.match(r.id, /^cmpl-[0-9a-f]{24}$/);
    assert.equal(r.object, "text_completion");
    assert.equal(r.model, "tiny-llama");
    assert.ok(Math.abs(r.created - Date.now() / 1000) < 60);
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.index, 0);
    assert.equal(c.finish_reason, "length");
    assert.equal(c.logprobs, null);
    assert.ok(c.text.length > 0);
    const promptTokens = s.engine.tokenizer.encode(PROMPT).length;
    assert.deepEqual(r.usage, { prompt_tokens: promptTokens, completion_tokens: 5, total_tokens: promptTokens + 5 });
    // Greedy: the same text every time.
    const again = await s.client.completions.create({
      prompt: PROMPT,
      max_tokens: 5,
      temperature: 0,
      model: "tiny-llama",
    });
    assert.equal(again.choices[0].text, c.text);
  });

  test("model may be omitted", async () => {
    const res = await postJson(`${s.url}/v1/completions`, { prompt: PROMPT, max_tokens: 2 });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.model, "tiny-llama");
    assert.equal(body.usage.completion_tokens, 2);
  });

  test("streaming: same text as non-streaming, ends with [DONE], usage chunk", async () => {
    const full = await s.client.completions.create({
      model: "tiny-llama",
      prompt: PROMPT,
      max_tokens: 6,
      temperature: 0,
    });
    const res = await postJson(`${s.url}/v1/completions`, {
      prompt: PROMPT,
      max_tokens: 6,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const events = await readSse(res);
    assert.equal(events.at(-1), "[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const usageChunk = chunks.at(-1);
    assert.deepEqual(usageChunk.choices, []);
    assert.equal(usageChunk.usage.completion_tokens, 6);
    assert.equal(usageChunk.usage.total_tokens, usageChunk.usage.prompt_tokens + 6);
    let text = "";
    for (const c of chunks.slice(0, -1)) {
      assert.equal(c.object, "text_completion");
      assert.equal(c.id, usageChunk.id);
      assert.equal(c.usage, null);
      text += c.choices[0].text;
    }
    assert.equal(text, full.choices[0].text);
    assert.equal(chunks.at(-2).choices[0].finish_reason, "length");
  });

  test("streaming through the openai client", async () => {
    const stream = await s.client.completions.create({
      model: "tiny-llama",
      prompt: PROMPT,
      max_tokens: 4,
      stream: true,
    });
    let text = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.ok(text.length > 0);
    assert.equal(finish, "length");
  });

  test("n > 1 and a batch of prompts: choices numbered prompt * n + index", async () => {
    const r = await s.client.completions.create({
      model: "tiny-llama",
      prompt: ["Hello there", "The cat sat"],
      n: 2,
      max_tokens: 3,
      temperature: 1,
      seed: 7,
    });
    assert.deepEqual(
      r.choices.map((c) => c.index),
      [0, 1, 2, 3],
    );
    for (const c of r.choices) assert.equal(c.finish_reason, "length");
    const tok = s.engine.tokenizer;
    const prompt = tok.encode("Hello there").length + tok.encode("The cat sat").length;
    assert.deepEqual(r.usage, { prompt_tokens: prompt, completion_tokens: 12, total_tokens: prompt + 12 });
    // Siblings sample differently from one seed.
    assert.notEqual(r.choices[0].text, r.choices[1].text);
    // Same seed: the same choices again.
    const again = await s.client.completions.create({
      model: "tiny-llama",
      prompt: ["Hello there", "The cat sat"],
      n: 2,
      max_tokens: 3,
      temperature: 1,
      seed: 7,
    });
    assert.deepEqual(
      again.choices.map((c) => c.text),
      r.choices.map((c) => c.text),
    );
  });

  test("streaming n > 1: every choice finishes", async () => {
    const stream = await s.client.completions.create({
      model: "tiny-llama",
      prompt: PROMPT,
      n: 3,
      max_tokens: 4,
      stream: true,
    });
    const finish = new Map<number, string>();
    const texts = new Map<number, string>();
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        texts.set(c.index, (texts.get(c.index) ?? "") + c.text);
        if (c.finish_reason) finish.set(c.index, c.finish_reason);
      }
    }
    assert.deepEqual([...finish.entries()].sort(), [
      [0, "length"],
      [1, "length"],
      [2, "length"],
    ]);
  });

  test("token id prompts, single and batched", async () => {
    const ids = s.engine.tokenizer.encode(PROMPT);
    const r = await s.client.completions.create({ model: "tiny-llama", prompt: ids, max_tokens: 2, temperature: 0 });
    assert.equal(r.usage?.prompt_tokens, ids.length);
    const text = await s.client.completions.create({
      model: "tiny-llama",
      prompt: PROMPT,
      max_tokens: 2,
      temperature: 0,
    });
    assert.equal(r.choices[0].text, text.choices[0].text);
    const b = await s.client.completions.create({ model: "tiny-llama", prompt: [ids, [5, 6, 7]], max_tokens: 2 });
    assert.equal(b.choices.length, 2);
    assert.equal(b.usage?.prompt_tokens, ids.length + 3);
  });

  test("legacy logprobs", async () => {
    const r = await s.client.completions.create({
      model: "tiny-llama",
      prompt: PROMPT,
      max_tokens: 5,
      temperature: 0,
      logprobs: 2,
    });
    const lp = r.choices[0].logprobs!;
    assert.equal(lp.tokens!.length, 5);
    assert.equal(lp.token_logprobs!.length, 5);
    assert.equal(lp.top_logprobs!.length, 5);
    assert.equal(lp.text_offset!.length, 5);
    assert.equal(lp.tokens!.join(""), r.choices[0].text);
    let offset = 0;
    for (let i = 0; i < 5; i++) {
      assert.equal(lp.text_offset![i], offset);
      offset += lp.tokens![i].length;
      assert.ok(lp.token_logprobs![i] <= 0);
      const top = lp.top_logprobs![i];
      assert.ok(Object.keys(top).length >= 1 && Object.keys(top).length <= 3);
      assert.equal(top[lp.tokens![i]], lp.token_logprobs![i]);
    }
    // Streaming logprobs carry the same entries.
    const stream = await s.client.completions.create({
      model: "tiny-llama",
      prompt: PROMPT,
      max_tokens: 5,
      temperature: 0,
      logprobs: 2,
      stream: true,
    });
    const tokens: string[] = [];
    const offsets: number[] = [];
    for await (const chunk of stream) {
      tokens.push(...(chunk.choices[0]?.logprobs?.tokens ?? []));
      offsets.push(...(chunk.choices[0]?.logprobs?.text_offset ?? []));
    }
    assert.deepEqual(tokens, lp.tokens);
    assert.deepEqual(offsets, lp.text_offset);
  });

  test("stop strings cut the text and finish with stop", async () => {
    const free = await s.client.completions.create({
      model: "tiny-llama",
      prompt: PROMPT,
      max_tokens: 8,
      temperature: 0,
    });
    const words = free.choices[0].text.split(" ").filter(Boolean);
    const stopWord = ` ${words[3]}`;
    const expected = free.choices[0].text.slice(0, free.choices[0].text.indexOf(stopWord));
    for (const stop of [stopWord, [stopWord, "zzzzqqq"]]) {
      const r = await s.client.completions.create({
        model: "tiny-llama",
        prompt: PROMPT,
        max_tokens: 8,
        temperature: 0,
        stop,
      });
      assert.equal(r.choices[0].text, expected);
      assert.equal(r.choices[0].finish_reason, "stop");
      assert.ok(r.usage!.completion_tokens < 8);
    }
    const stream = await s.client.completions.create({
      model: "tiny-llama",
      prompt: PROMPT,
      max_tokens: 8,
      temperature: 0,
      stop: stopWord,
      stream: true,
    });
    let text = "";
    let finish = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, expected);
    assert.equal(finish, "stop");
  });

  test("seed reproducibility at temperature 1", async () => {
    const run = (seed: number) =>
      s.client.completions.create({ model: "tiny-llama", prompt: PROMPT, max_tokens: 8, temperature: 1, seed });
    const [a, b, c] = await Promise.all([run(1234), run(1234), run(99)]);
    assert.equal(a.choices[0].text, b.choices[0].text);
    assert.notEqual(a.choices[0].text, c.choices[0].text);
  });

  test("sampling fields reach the engine under their engine names", async () => {
    const before = s.engine.calls.length;
    const res = await postJson(`${s.url}/v1/completions`, {
      model: "tiny-llama",
      prompt: "hi",
      max_tokens: 3,
      temperature: 0.7,
      top_p: 0.9,
      top_k: 5,
      min_p: 0.05,
      repetition_penalty: 1.1,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      logit_bias: { "17": 5, "42": -100 },
      seed: 3,
      min_tokens: 2,
      ignore_eos: true,
      stop: "xyz",
      priority: 4,
      cache_salt: "tenant-a",
      user: "someone",
      some_unknown_field: { anything: true },
    });
    assert.equal(res.status, 200, await res.clone().text());
    const call = s.engine.calls[before];
    assert.deepEqual(call.params, {
      temperature: 0.7,
      topP: 0.9,
      topK: 5,
      minP: 0.05,
      repetitionPenalty: 1.1,
      presencePenalty: 0.5,
      frequencyPenalty: -0.5,
      logitBias: { "17": 5, "42": -100 },
      seed: 3,
      minTokens: 2,
      ignoreEos: true,
      stop: "xyz",
      maxTokens: 3,
    });
    assert.equal(call.opts.priority, 4);
    assert.equal(call.opts.cacheSalt, "tenant-a");
    assert.ok(call.opts.signal instanceof AbortSignal);
  });
});

describe("chat completions", () => {
  const messages = [
    { role: "system" as const, content: "You are terse." },
    { role: "user" as const, content: "Tell me a story." },
  ];

  test("non-streaming: OpenAI shape and usage", async () => {
    const r = await s.client.chat.completions.create({ model: "tiny-llama", messages, max_tokens: 4, temperature: 0 });
    assert.match(r.id, /^chatcmpl-[0-9a-f]{24}$/);
    assert.equal(r.object, "chat.completion");
    assert.equal(r.model, "tiny-llama");
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].message.role, "assistant");
    assert.ok((r.choices[0].message.content ?? "").length > 0);
    assert.equal(r.choices[0].finish_reason, "length");
    assert.equal(r.choices[0].logprobs, null);
    const tok = s.engine.tokenizer;
    const promptTokens = tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    }).length;
    assert.deepEqual(r.usage, { prompt_tokens: promptTokens, completion_tokens: 4, total_tokens: promptTokens + 4 });
  });

  test("max_completion_tokens wins over max_tokens; content parts; tool role", async () => {
    const r = await s.client.chat.completions.create({
      model: "tiny-llama",
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "Hello" },
            { type: "text", text: "there" },
          ],
        },
        { role: "assistant", content: "Hi" },
        { role: "tool", content: "42", tool_call_id: "call_1" },
        { role: "user", content: "and?" },
      ],
      max_tokens: 9,
      max_completion_tokens: 2,
    });
    assert.equal(r.usage?.completion_tokens, 2);
    const call = s.engine.calls.at(-1)!;
    assert.ok("messages" in call.prompt);
    assert.equal((call.prompt as { messages: { content: string }[] }).messages[0].content, "Hello\nthere");
  });

  test("streaming: role chunk first, content, finish, usage, [DONE]", async () => {
    const full = await s.client.chat.completions.create({
      model: "tiny-llama",
      messages,
      max_tokens: 5,
      temperature: 0,
    });
    const res = await postJson(`${s.url}/v1/chat/completions`, {
      messages,
      max_tokens: 5,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const events = await readSse(res);
    assert.equal(events.at(-1), "[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.equal(chunks[0].object, "chat.completion.chunk");
    assert.deepEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
    const usage = chunks.at(-1);
    assert.deepEqual(usage.choices, []);
    assert.equal(usage.usage.completion_tokens, 5);
    let text = "";
    for (const c of chunks.slice(1, -1)) text += c.choices[0].delta.content ?? "";
    assert.equal(text, full.choices[0].message.content);
    assert.equal(chunks.at(-2).choices[0].finish_reason, "length");
  });

  test("streaming n = 2 through the openai client", async () => {
    const stream = await s.client.chat.completions.create({
      model: "tiny-llama",
      messages,
      max_tokens: 3,
      n: 2,
      stream: true,
      seed: 5,
      temperature: 1,
    });
    const roles = new Set<number>();
    const finish = new Map<number, string>();
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        if (c.delta.role === "assistant") roles.add(c.index);
        if (c.finish_reason) finish.set(c.index, c.finish_reason);
      }
    }
    assert.deepEqual([...roles].sort(), [0, 1]);
    assert.deepEqual([...finish.keys()].sort(), [0, 1]);
  });

  test("logprobs with top_logprobs", async () => {
    const r = await s.client.chat.completions.create({
      model: "tiny-llama",
      messages,
      max_tokens: 4,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
    });
    const content = r.choices[0].logprobs!.content!;
    assert.equal(content.length, 4);
    assert.equal(content.map((e) => e.token).join(""), r.choices[0].message.content);
    for (const e of content) {
      assert.equal(typeof e.logprob, "number");
      assert.deepEqual(e.bytes, [...Buffer.from(e.token, "utf8")]);
      assert.equal(e.top_logprobs.length, 3);
      assert.equal(e.top_logprobs[0].token, e.token);
    }
    const plain = await s.client.chat.completions.create({
      model: "tiny-llama",
      messages,
      max_tokens: 2,
      logprobs: true,
    });
    assert.equal(plain.choices[0].logprobs!.content!.length, 2);
    assert.deepEqual(plain.choices[0].logprobs!.content![0].top_logprobs, []);
  });

  test("seed reproducibility and stop", async () => {
    const run = () =>
      s.client.chat.completions.create({ model: "tiny-llama", messages, max_tokens: 8, temperature: 1, seed: 77 });
    const [a, b] = await Promise.all([run(), run()]);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    const text = a.choices[0].message.content!;
    const stop = ` ${text.split(" ").filter(Boolean)[2]}`;
    const c = await s.client.chat.completions.create({
      model: "tiny-llama",
      messages,
      max_tokens: 8,
      temperature: 1,
      seed: 77,
      stop: [stop],
    });
    assert.equal(c.choices[0].message.content, text.slice(0, text.indexOf(stop)));
    assert.equal(c.choices[0].finish_reason, "stop");
  });
});

describe("other routes", () => {
  test("GET /v1/models", async () => {
    const list = await s.client.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      ["tiny-llama"],
    );
    assert.equal(list.data[0].object, "model");
    const raw = await (await fetch(`${s.url}/v1/models`)).json();
    assert.equal(raw.object, "list");
    assert.equal(raw.data[0].max_model_len, 2048);
  });

  test("GET /health", async () => {
    const res = await fetch(`${s.url}/health`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: "ok" });
  });

  test("x-request-id is echoed, or made", async () => {
    const a = await fetch(`${s.url}/health`, { headers: { "x-request-id": "abc-123" } });
    assert.equal(a.headers.get("x-request-id"), "abc-123");
    const b = await fetch(`${s.url}/health`, { headers: { "x-request-id": "bad id\twith spaces" } });
    assert.match(b.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  });

  test("POST /tokenize and /detokenize", async () => {
    const tok = s.engine.tokenizer;
    const r = await (await postJson(`${s.url}/tokenize`, { model: "tiny-llama", prompt: "Hello world" })).json();
    assert.deepEqual(r, {
      count: tok.encode("Hello world").length,
      max_model_len: 2048,
      tokens: tok.encode("Hello world"),
    });
    const d = await (await postJson(`${s.url}/detokenize`, { tokens: r.tokens })).json();
    assert.deepEqual(d, { prompt: "Hello world" });
    const messages = [{ role: "user", content: "Hi" }];
    const m = await (await postJson(`${s.url}/tokenize`, { messages })).json();
    const expected = tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    });
    assert.deepEqual(m.tokens, expected);
    assert.equal(m.count, expected.length);
    const strs = await (await postJson(`${s.url}/tokenize`, { prompt: "Hello world", return_token_strs: true })).json();
    assert.equal(strs.token_strs.join(""), "Hello world");
  });

  test("GET /metrics: vLLM and loom names with model_name", async () => {
    await s.client.completions.create({ model: "tiny-llama", prompt: PROMPT, max_tokens: 3 });
    const res = await fetch(`${s.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
    const text = await res.text();
    for (const name of [
      "vllm:num_requests_running",
      "vllm:num_requests_waiting",
      "vllm:kv_cache_usage_perc",
      "vllm:prefix_cache_queries",
      "vllm:prefix_cache_hits",
      "vllm:num_preemptions_total",
      "vllm:spec_decode_num_draft_tokens_total",
      "vllm:spec_decode_num_accepted_tokens_total",
      "vllm:prompt_tokens_total",
      "vllm:generation_tokens_total",
      "vllm:request_success_total",
      "vllm:time_to_first_token_seconds_bucket",
      "vllm:inter_token_latency_seconds_bucket",
      "vllm:e2e_request_latency_seconds_bucket",
      "vllm:request_prompt_tokens_bucket",
      "vllm:request_generation_tokens_bucket",
      "loom_kv_blocks_used",
      "loom_kv_blocks_total",
    ]) {
      assert.match(text, new RegExp(`^${name}\\{[^}]*model_name="tiny-llama"`, "m"), name);
    }
    assert.match(text, /^vllm:request_success_total\{model_name="tiny-llama",finished_reason="length"\} [1-9]/m);
    assert.match(text, /^loom_http_requests_total\{route="\/v1\/completions",status="200"\} [1-9]/m);
    assert.match(text, /^loom_kv_blocks_total\{model_name="tiny-llama"\} 512$/m);
    const gen = Number(/^vllm:generation_tokens_total\{[^}]*\} (\d+)/m.exec(text)?.[1]);
    const stats = await s.engine.stats();
    assert.ok(gen > 0 && gen <= stats.generationTokens);
  });
});
