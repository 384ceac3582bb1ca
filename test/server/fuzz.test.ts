/**
 * Fuzz: 2,000 random or malformed bodies. Every answer is a 4xx JSON error in OpenAI's shape, or (for a
 * body that happens to be valid) a well-formed 200; the server never crashes and serves normally afterwards.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { mulberry32 as rng } from "../helpers/mulberry32.ts";
import { assertErrorShape, serveFake, type TestServer } from "./helpers.ts";

let s: TestServer;
before(async () => {
  s = await serveFake({ tokenDelayMs: 0, maxRunning: 64 }, { maxBodyBytes: 256 * 1024 });
});
after(async () => {
  await s?.close();
});

const rand = rng(20260101);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
const chance = (p: number) => rand() < p;

const WEIRD_NUMBERS = [
  0,
  -1,
  1,
  2,
  0.5,
  -0.5,
  1e20,
  -1e20,
  2 ** 53,
  2 ** 53 - 1,
  2 ** 53 + 2,
  1e-300,
  3.7,
  100,
  101,
  128,
  129,
  -100,
  2147483648,
  1e15,
];
const WEIRD_STRINGS = [
  "",
  "a",
  "0",
  "1",
  "true",
  "null",
  "NaN",
  "\u0000",
  "😀",
  "\ud800",
  "x".repeat(5000),
  "__proto__",
  "<|im_end|>",
];

function randomValue(depth = 0): unknown {
  switch (Math.floor(rand() * (depth > 2 ? 5 : 8))) {
    case 0:
      return pick(WEIRD_NUMBERS);
    case 1:
      return pick(WEIRD_STRINGS);
    case 2:
      return chance(0.5);
    case 3:
      return null;
    case 4:
      return Math.floor(rand() * 5000) - 100;
    case 5:
      return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(depth + 1));
    case 6: {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < Math.floor(rand() * 4); i++)
        o[pick(["a", "type", "text", "role", "content", "5", "include_usage"])] = randomValue(depth + 1);
      return o;
    }
    default:
      return Array.from({ length: Math.floor(rand() * 3) }, () => Math.floor(rand() * 5000));
  }
}

const FIELDS = [
  "model",
  "prompt",
  "messages",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "top_k",
  "min_p",
  "n",
  "stop",
  "seed",
  "presence_penalty",
  "frequency_penalty",
  "repetition_penalty",
  "logit_bias",
  "logprobs",
  "top_logprobs",
  "stream",
  "stream_options",
  "ignore_eos",
  "min_tokens",
  "user",
  "echo",
  "priority",
  "cache_salt",
  "best_of",
  "tokens",
  "add_special_tokens",
];

function validishMessages(): unknown {
  return [
    {
      role: pick(["user", "system", "assistant", "tool", "bad"]),
      content: pick(["hi", "", ["x"], [{ type: "text", text: "t" }]]),
    },
  ];
}

/** A JSON-ish object body, mostly plausible, with random breakage. */
function randomObject(): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  // Mostly small max_tokens so valid requests finish fast.
  o.max_tokens = chance(0.8) ? 1 + Math.floor(rand() * 3) : randomValue();
  if (chance(0.7))
    o.prompt = chance(0.6) ? pick(["hello", "", "x".repeat(70_000), ["a", "b"], [1, 2, 3], [[4, 5]]]) : randomValue();
  if (chance(0.5)) o.messages = chance(0.6) ? validishMessages() : randomValue();
  for (let i = 0; i < Math.floor(rand() * 4); i++) {
    const f = pick(FIELDS);
    if (f === "max_tokens" || f === "max_completion_tokens") o[f] = chance(0.5) ? 2 : randomValue();
    else o[f] = randomValue();
  }
  if (chance(0.05)) o.model = "tiny-llama";
  if (chance(0.15)) o.stream = true;
  if (chance(0.1)) o.n = pick(WEIRD_NUMBERS);
  return o;
}

const deep = (n: number) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;

/** Text bodies that are not plain JSON objects, or are but with something nasty. */
function randomRaw(): string | Uint8Array {
  const base = JSON.stringify(randomObject());
  switch (Math.floor(rand() * 14)) {
    case 0:
      return base.slice(0, Math.floor(rand() * base.length)); // truncated
    case 1:
      return base.replace(/:(\s*)(-?\d+(\.\d+)?|true|false|null)/, ":NaN");
    case 2:
      return base.replace(/:(\s*)(-?\d+(\.\d+)?|true|false|null)/, ":-Infinity");
    case 3: {
      const bytes = Buffer.from(base);
      const at = Math.floor(rand() * bytes.length);
      return new Uint8Array([...bytes.subarray(0, at), pick([0xff, 0xc0, 0x80, 0xed, 0xf8]), ...bytes.subarray(at)]);
    }
    case 4:
      return deep(20 + Math.floor(rand() * 200));
    case 5:
      return `{"prompt": "a", "max_tokens": 1, "__proto__": {"isAdmin": true, "max_tokens": 9999}, "constructor": {"prototype": {"x": 1}}}`;
    case 6:
      return JSON.stringify([randomObject()]); // an array where an object goes
    case 7:
      return pick([
        "",
        " ",
        "null",
        "0",
        '"str"',
        "true",
        "{",
        "}",
        "{}",
        "[]",
        "{,}",
        "{'prompt': 'a'}",
        '{"prompt": "a",}',
      ]);
    case 8:
      return `{"prompt": "a", "max_tokens": ${pick(["1e400", "-1e400", "99999999999999999999999", "-0", "1.0", "0x10", "01"])}}`;
    case 9:
      return base.replace(/^\{/, `{"prompt": ${"[".repeat(40)}1${"]".repeat(40)},`);
    case 10:
      return `{"messages": [{"role": "user", "content": "${"\\ud800".repeat(3)}"}], "max_tokens": 1}`;
    case 11:
      return `${base}${"x".repeat(Math.floor(rand() * 10))}`;
    case 12:
      return `{"prompt": "${"a".repeat(300 * 1024)}"}`; // over the body limit
    default:
      return base;
  }
}

const ROUTES = ["/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"];

interface Outcome {
  status: number;
  route: string;
  body: string;
  sent: string;
}

async function send(route: string, body: string | Uint8Array): Promise<Outcome> {
  const res = await fetch(`${s.url}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body as BodyInit,
  });
  const text = await res.text();
  const sent = typeof body === "string" ? body.slice(0, 300) : `<${body.length} bytes>`;
  return { status: res.status, route, body: text, sent };
}

function check(o: Outcome, streamed: Map<string, number>): void {
  const where = `${o.route} ${o.status} for ${o.sent}\n→ ${o.body.slice(0, 300)}`;
  if (o.status === 200) {
    if (o.body.startsWith("data: ")) {
      const events = o.body.split("\n\n").filter(Boolean);
      assert.equal(events.at(-1), "data: [DONE]", where);
      for (const e of events.slice(0, -1)) {
        const chunk = JSON.parse(e.slice(6));
        if (chunk.error) assertErrorShape(chunk);
        else assert.ok(Array.isArray(chunk.choices), where);
      }
      streamed.set(o.route, (streamed.get(o.route) ?? 0) + 1);
      return;
    }
    const body = JSON.parse(o.body);
    if (o.route === "/tokenize") {
      assert.ok(Array.isArray(body.tokens) && body.count === body.tokens.length, where);
    } else if (o.route === "/detokenize") {
      assert.equal(typeof body.prompt, "string", where);
    } else {
      assert.ok(Array.isArray(body.choices) && body.choices.length >= 1, where);
      assert.match(body.id, /^(chat)?cmpl-/, where);
      for (const c of body.choices) assert.ok(["stop", "length"].includes(c.finish_reason), where);
      assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + body.usage.completion_tokens, where);
    }
    return;
  }
  assert.ok(o.status >= 400 && o.status < 500, where);
  let parsed: unknown;
  assert.doesNotThrow(() => {
    parsed = JSON.parse(o.body);
  }, where);
  assertErrorShape(parsed);
}

test("2,000 random and malformed bodies", { timeout: 180_000 }, async () => {
  const statuses = new Map<number, number>();
  const streamed = new Map<string, number>();
  const N = 2000;
  const CONCURRENCY = 16;
  let next = 0;
  const worker = async () => {
    while (next < N) {
      next++;
      const route = pick(ROUTES);
      const body = chance(0.55) ? JSON.stringify(randomObject()) : randomRaw();
      const o = await send(route, body);
      statuses.set(o.status, (statuses.get(o.status) ?? 0) + 1);
      check(o, streamed);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const total = [...statuses.values()].reduce((a, b) => a + b, 0);
  assert.equal(total, N);
  assert.ok((statuses.get(400) ?? 0) > N / 3, `statuses: ${JSON.stringify([...statuses])}`);
  assert.equal(statuses.get(500) ?? 0, 0);
  // Nothing was polluted.
  assert.equal(({} as Record<string, unknown>).isAdmin, undefined);

  // And a normal request is served correctly afterwards.
  const r = await s.client.chat.completions.create({
    model: "tiny-llama",
    messages: [{ role: "user", content: "hello" }],
    max_tokens: 3,
  });
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage?.completion_tokens, 3);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal((await s.engine.stats()).kvBlocksUsed, 0);
  console.log(
    `fuzz statuses (${N} bodies): ${JSON.stringify(Object.fromEntries(statuses))}; streams: ${JSON.stringify(Object.fromEntries(streamed))}`,
  );
});
