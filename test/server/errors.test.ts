/** Error answers (400 / 401 / 404 / 405 / 413 / 415 / 429 / 500) in OpenAI's shape, and the server surviving them. */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { assertErrorShape, expectError, metric, postJson, serveFake, type TestServer, waitFor } from "./helpers.ts";

let s: TestServer;
before(async () => {
  s = await serveFake({ tokenDelayMs: 1, crashOnPrompt: "__crash__" }, { maxBodyBytes: 64 * 1024 });
});
after(async () => {
  await s?.close();
});

const completions = () => `${s.url}/v1/completions`;
const chat = () => `${s.url}/v1/chat/completions`;

describe("400: invalid parameters name the parameter", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ["temperature of the wrong type", { prompt: "a", temperature: "hot" }, "temperature"],
    ["negative max_tokens", { prompt: "a", max_tokens: -1 }, "max_tokens"],
    ["fractional max_tokens", { prompt: "a", max_tokens: 1.5 }, "max_tokens"],
    ["huge max_tokens", { prompt: "a", max_tokens: 1e20 }, "max_tokens"],
    ["max_tokens over the context", { prompt: "a", max_tokens: 100000 }, "max_tokens"],
    ["top_p out of range", { prompt: "a", top_p: 2 }, "top_p"],
    ["n = 0", { prompt: "a", n: 0 }, "n"],
    ["n as a string", { prompt: "a", n: "2" }, "n"],
    ["n huge", { prompt: "a", n: 1e15 }, "n"],
    ["n huge in a batch", { prompt: ["a", "b"], n: 2 ** 53 - 1 }, "n"],
    ["logit_bias with a non-id key", { prompt: "a", logit_bias: { abc: 1 } }, "logit_bias"],
    ["logit_bias as an array", { prompt: "a", logit_bias: [1, 2] }, "logit_bias"],
    ["stop as a number", { prompt: "a", stop: 5 }, "stop"],
    ["seed as a float", { prompt: "a", seed: 0.5 }, "seed"],
    ["logprobs out of range", { prompt: "a", logprobs: 50 }, "logprobs"],
    ["min_tokens over max_tokens", { prompt: "a", max_tokens: 2, min_tokens: 5 }, "min_tokens"],
    ["stream not a boolean", { prompt: "a", stream: "yes" }, "stream"],
    ["stream_options an array", { prompt: "a", stream: true, stream_options: [] }, "stream_options"],
    ["prompt missing", { max_tokens: 1 }, "prompt"],
    ["prompt an object", { prompt: { text: "a" } }, "prompt"],
    ["prompt an empty list", { prompt: [] }, "prompt"],
    ["prompt mixing types", { prompt: ["a", 1] }, "prompt"],
    ["prompt token id out of the vocabulary", { prompt: [1, 2, 99999999] }, "prompt"],
    ["prompt token id negative", { prompt: [[1, -2]] }, "prompt"],
    ["empty prompt", { prompt: "" }, "prompt"],
    ["echo", { prompt: "a", echo: true }, "echo"],
    ["model of the wrong type", { prompt: "a", model: 3 }, "model"],
    ["priority a string", { prompt: "a", priority: "high" }, "priority"],
    ["cache_salt empty", { prompt: "a", cache_salt: "" }, "cache_salt"],
  ];
  for (const [name, body, param] of cases) {
    test(`completions: ${name}`, async () => {
      const err = await expectError(await postJson(completions(), { max_tokens: 1, ...body }), 400, param);
      assert.equal(err.type, "invalid_request_error");
    });
  }

  const chatCases: [string, Record<string, unknown>, string][] = [
    ["messages missing", {}, "messages"],
    ["messages not a list", { messages: "hi" }, "messages"],
    ["messages empty", { messages: [] }, "messages"],
    ["a message that is a list", { messages: [["user", "hi"]] }, "messages[0]"],
    ["an unknown role", { messages: [{ role: "wizard", content: "hi" }] }, "messages[0].role"],
    ["content a number", { messages: [{ role: "user", content: 5 }] }, "messages[0].content"],
    ["user content missing", { messages: [{ role: "user" }] }, "messages[0].content"],
    [
      "an image part",
      { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] },
      "messages[0].content[0].type",
    ],
    ["top_logprobs without logprobs", { messages: [{ role: "user", content: "hi" }], top_logprobs: 2 }, "top_logprobs"],
    [
      "top_logprobs out of range",
      { messages: [{ role: "user", content: "hi" }], logprobs: true, top_logprobs: 50 },
      "top_logprobs",
    ],
    ["logprobs an integer", { messages: [{ role: "user", content: "hi" }], logprobs: 3 }, "logprobs"],
    [
      "max_completion_tokens negative",
      { messages: [{ role: "user", content: "hi" }], max_completion_tokens: -3 },
      "max_completion_tokens",
    ],
    [
      "json response_format",
      { messages: [{ role: "user", content: "hi" }], response_format: { type: "json_object" } },
      "response_format",
    ],
  ];
  for (const [name, body, param] of chatCases) {
    test(`chat: ${name}`, async () => {
      await expectError(await postJson(chat(), { max_tokens: 1, ...body }), 400, param);
    });
  }

  test("a message names the parameter as the client wrote it", async () => {
    const err = await expectError(await postJson(completions(), { prompt: "a", top_p: 5 }), 400, "top_p");
    assert.match(err.message, /top_p/);
    assert.doesNotMatch(err.message, /topP/);
  });

  test("the openai client surfaces the error", async () => {
    await assert.rejects(
      s.client.completions.create({ model: "tiny-llama", prompt: "a", temperature: -1 }),
      (e: Error & { status?: number; param?: string }) => e.status === 400 && e.param === "temperature",
    );
  });
});

describe("400: prompt too long gives both lengths", () => {
  test("token ids over the context", async () => {
    const ids = Array.from({ length: 3000 }, (_, i) => 10 + (i % 100));
    const err = await expectError(await postJson(completions(), { prompt: ids, max_tokens: 1 }), 400, "prompt");
    assert.equal(err.code, "context_length_exceeded");
    assert.match(err.message, /2048/);
    assert.match(err.message, /3000/);
  });

  test("text over the context", async () => {
    const prompt = "hello world ".repeat(1500);
    const n = s.engine.tokenizer.encode(prompt).length;
    const err = await expectError(await postJson(completions(), { prompt, max_tokens: 1 }), 400, "prompt");
    assert.match(err.message, new RegExp(`${n}`));
    assert.match(err.message, /2048/);
  });

  test("enormous text is refused without tokenizing it", async () => {
    const err = await expectError(await postJson(completions(), { prompt: "x".repeat(60_000) }), 400, "prompt");
    assert.equal(err.code, "context_length_exceeded");
    assert.match(err.message, /60000 characters/);
  });

  test("chat messages over the context", async () => {
    const content = "hello world ".repeat(1500);
    const err = await expectError(await postJson(chat(), { messages: [{ role: "user", content }] }), 400, "messages");
    assert.equal(err.code, "context_length_exceeded");
  });
});

describe("400: bodies that are not a JSON object", () => {
  const bodies: [string, string | Uint8Array][] = [
    ["invalid JSON", "{not json"],
    ["a NaN literal", '{"prompt": "a", "temperature": NaN}'],
    ["an Infinity literal", '{"prompt": "a", "max_tokens": Infinity}'],
    ["trailing garbage", '{"prompt": "a"} x'],
    ["an empty body", ""],
    ["a JSON array", '[{"prompt": "a"}]'],
    ["a JSON string", '"prompt"'],
    ["null", "null"],
    ["deep nesting", `{"prompt": "a", "x": ${"[".repeat(100)}${"]".repeat(100)}}`],
    ["very deep nesting", "[".repeat(50000)],
    ["invalid UTF-8", new Uint8Array([...Buffer.from('{"prompt": "a'), 0xff, 0xfe, ...Buffer.from('"}')])],
    [
      "a lone surrogate byte sequence",
      new Uint8Array([...Buffer.from('{"prompt": "'), 0xed, 0xa0, 0x80, ...Buffer.from('"}')]),
    ],
  ];
  for (const [name, body] of bodies) {
    test(name, async () => {
      await expectError(await postJson(completions(), body), 400);
    });
  }

  test("1e999 (Infinity once parsed) is a bad number", async () => {
    await expectError(await postJson(completions(), '{"prompt": "a", "temperature": 1e999}'), 400, "temperature");
  });
});

describe("prototype pollution", () => {
  test("__proto__ and constructor keys are dropped", async () => {
    const body =
      '{"prompt": "hi", "max_tokens": 1, "__proto__": {"polluted": 1, "max_tokens": 999}, ' +
      '"constructor": {"prototype": {"polluted": 2}}, "logit_bias": {"__proto__": {"x": 1}}, ' +
      '"stream_options": {"__proto__": {"include_usage": true}}}';
    const res = await postJson(completions(), body);
    assert.equal(res.status, 200, await res.clone().text());
    const out = await res.json();
    assert.equal(out.usage.completion_tokens, 1);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
    const call = s.engine.calls.at(-1)!;
    assert.deepEqual(Object.keys(call.params.logitBias ?? {}), []);
  });
});

describe("401 / 404 / 405 / 413 / 415", () => {
  test("404 unknown route and unknown model", async () => {
    await expectError(await fetch(`${s.url}/v1/nothing`), 404);
    await expectError(await postJson(`${s.url}/v2/completions`, {}), 404);
    const err = await expectError(await postJson(completions(), { model: "gpt-4", prompt: "a" }), 404, "model");
    assert.equal(err.code, "model_not_found");
    await expectError(
      await postJson(chat(), { model: "gpt-4", messages: [{ role: "user", content: "a" }] }),
      404,
      "model",
    );
    await expectError(await postJson(`${s.url}/tokenize`, { model: "gpt-4", prompt: "a" }), 404, "model");
  });

  test("405 wrong method, with Allow", async () => {
    const res = await fetch(completions());
    assert.equal(res.headers.get("allow"), "POST");
    await expectError(res, 405);
    await expectError(await fetch(`${s.url}/health`, { method: "POST" }), 405);
    await expectError(await fetch(`${s.url}/v1/models`, { method: "DELETE" }), 405);
  });

  test("415 for a body that is not JSON", async () => {
    const res = await fetch(completions(), {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "hello",
    });
    await expectError(res, 415);
    const form = await fetch(completions(), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "prompt=hi",
    });
    await expectError(form, 415);
  });

  test("413 for a body over --max-body-bytes (declared length)", async () => {
    const big = JSON.stringify({ prompt: "a".repeat(100 * 1024) });
    const err = await expectError(await postJson(completions(), big), 413);
    assert.equal(err.code, "request_too_large");
  });

  test("413 for a chunked body, reading stops at the limit", async () => {
    // A body that never ends: the server must answer once the limit is passed, not wait for the end.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(completions(), {
        method: "POST",
        headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on("error", reject);
      req.write('{"prompt": "');
      const chunk = "a".repeat(16 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < 10 * 1024 * 1024 && !req.destroyed) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once("drain", pump);
            return;
          }
        }
      };
      pump();
    });
    assert.equal(status, 413);
    // The server still answers.
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
  });

  /** Sends raw bytes, returns everything the server writes before it closes the connection. */
  const rawExchange = (data: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const { port } = new URL(s.url);
      const sock = connect(Number(port), "127.0.0.1", () => sock.write(data));
      let out = "";
      sock.setEncoding("utf8");
      sock.on("data", (d) => {
        out += d;
      });
      sock.on("close", () => resolve(out));
      sock.on("error", reject);
      sock.setTimeout(10_000, () => sock.destroy());
    });
  const rawJsonError = (out: string) => {
    const body = JSON.parse(out.slice(out.indexOf("\r\n\r\n") + 4));
    assertErrorShape(body);
    return body.error;
  };

  test("400 JSON error for a malformed chunked body on a routed request (not a silent close)", async () => {
    const count = async (status: string) =>
      (await metric(s.url, "loom_http_requests_total", { route: "/v1/completions", status })) ?? 0;
    const [before400, before499] = [await count("400"), await count("499")];
    const out = await rawExchange(
      "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" +
        "transfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    );
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.match(rawJsonError(out).message, /malformed HTTP request/);
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
    // counted as the 400 it got, not as a client that went away (499); the server may count it a moment later
    await waitFor(async () => (await count("400")) + (await count("499")) > before400 + before499);
    assert.equal(await count("400"), before400 + 1);
    assert.equal(await count("499"), before499);
  });

  test("417 JSON error for an unsupported Expect header", async () => {
    const out = await rawExchange(
      "POST /v1/completions HTTP/1.1\r\nhost: x\r\nexpect: foo\r\ncontent-length: 2\r\n\r\n{}",
    );
    assert.match(out, /^HTTP\/1\.1 417 /);
    assert.equal(rawJsonError(out).code, "expectation_failed");
  });

  test("401 with --api-key; /health and /metrics stay open", async () => {
    const a = await serveFake({}, { apiKey: "sekret" });
    try {
      const url = `${a.url}/v1/completions`;
      const body = { prompt: "a", max_tokens: 1 };
      let err = await expectError(await postJson(url, body), 401);
      assert.equal(err.code, "invalid_api_key");
      err = await expectError(await postJson(url, body, { authorization: "Bearer wrong" }), 401);
      await expectError(await postJson(url, body, { authorization: "Basic c2VrcmV0" }), 401);
      await expectError(await postJson(url, body, { authorization: "Bearer sekret2" }), 401);
      await expectError(await fetch(`${a.url}/v1/models`), 401);
      await expectError(await postJson(`${a.url}/tokenize`, { prompt: "a" }), 401);
      assert.equal((await postJson(url, body, { authorization: "Bearer sekret" })).status, 200);
      assert.equal((await fetch(`${a.url}/health`)).status, 200);
      assert.equal((await fetch(`${a.url}/metrics`)).status, 200);
      // The openai client sends the key.
      const r = await a.client.completions.create({ model: "tiny-llama", prompt: "a", max_tokens: 1 });
      assert.equal(r.usage?.completion_tokens, 1);
    } finally {
      await a.close();
    }
  });
});

describe("429 and 500", () => {
  test("a flood against --max-queued-requests 1: some 429 with Retry-After, the rest complete", async () => {
    const q = await serveFake({ tokenDelayMs: 5, maxRunning: 2 }, { maxQueuedRequests: 1 });
    try {
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          postJson(`${q.url}/v1/completions`, {
            prompt: `request ${i}`,
            max_tokens: 5,
            temperature: 0,
            stream: i % 2 === 0,
          }).then(async (res) => ({ i, res, text: await res.text() })),
        ),
      );
      const rejected = results.filter((r) => r.res.status === 429);
      const accepted = results.filter((r) => r.res.status === 200);
      assert.ok(rejected.length > 0, "some requests are refused");
      assert.ok(accepted.length >= 3, "some requests are served");
      assert.equal(rejected.length + accepted.length, 40);
      for (const r of rejected) {
        assert.equal(r.res.headers.get("retry-after"), "1");
        const body = JSON.parse(r.text);
        assert.equal(body.error.type, "rate_limit_error");
      }
      for (const r of accepted) {
        if (r.i % 2 === 0) {
          const chunks = r.text
            .split("\n\n")
            .filter(Boolean)
            .map((e) => e.slice(6));
          assert.equal(chunks.at(-1), "[DONE]");
          const parsed = chunks.slice(0, -1).map((c) => JSON.parse(c));
          assert.equal(parsed.at(-1).choices[0].finish_reason, "length");
        } else {
          const body = JSON.parse(r.text);
          assert.equal(body.usage.completion_tokens, 5);
          assert.equal(body.choices[0].finish_reason, "length");
        }
      }
    } finally {
      await q.close();
    }
  });

  test("a bug in a handler is a 500 JSON error, and the server goes on", async () => {
    const err = await expectError(await postJson(completions(), { prompt: "__crash__", max_tokens: 1 }), 500);
    assert.equal(err.type, "server_error");
    assert.doesNotMatch(err.message, /cannot read properties/); // no internals leak
    const ok = await postJson(completions(), { prompt: "fine", max_tokens: 1 });
    assert.equal(ok.status, 200);
  });
});
