// The engine client over a real engine thread: text streaming, stop strings, aborts, errors.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { PromptTooLongError } from "../../src/engine/engine.ts";
import { createEngine, type EngineClient } from "../../src/engine/engine-client.ts";
import { DEFAULT_ENGINE_OPTIONS } from "../../src/engine/options.ts";
import { ParamError } from "../../src/sampler/params.ts";

let engine: EngineClient;
before(async () => {
  engine = await createEngine({ ...DEFAULT_ENGINE_OPTIONS, backend: "reference", maxModelLen: 256 });
});
after(() => engine.close());

async function run(prompt: string, params: object, signal?: AbortSignal) {
  const chunks: string[] = [];
  const tokens: number[] = [];
  let finish: string | null = null;
  for await (const d of engine.generate({ text: prompt }, params, { signal })) {
    chunks.push(d.text);
    tokens.push(...d.tokenIds);
    if (d.finishReason) finish = d.finishReason;
  }
  return { text: chunks.join(""), chunks, tokens, finish };
}

test("streams the text of the tokens, matching a full decode", async () => {
  const r = await run("In the beginning God created", { temperature: 0, maxTokens: 20, ignoreEos: true });
  assert.equal(r.finish, "length");
  assert.equal(r.tokens.length, 20);
  assert.equal(r.text, engine.tokenizer.decode(r.tokens, { skipSpecialTokens: true }));
});

test("a stop string split across tokens is caught and never emitted", async () => {
  const free = await run("In the beginning God created", { temperature: 0, maxTokens: 24, ignoreEos: true });
  // Choose a stop string straddling the boundary between two tokens in the middle of the output.
  let prefix = "";
  let stop = "";
  for (let i = 4; i < free.tokens.length - 1; i++) {
    const a = engine.tokenizer.decode(free.tokens.slice(0, i + 1));
    const b = engine.tokenizer.decode(free.tokens.slice(0, i + 2));
    const left = a.slice(-2);
    const right = b.slice(a.length, a.length + 2);
    if (
      left.trim().length === 2 &&
      right.trim().length >= 1 &&
      !free.text.slice(0, a.length - 2).includes(left + right)
    ) {
      prefix = a.slice(0, -2);
      stop = left + right;
      break;
    }
  }
  assert.ok(stop, "found a straddling stop string");
  const r = await run("In the beginning God created", { temperature: 0, maxTokens: 24, ignoreEos: true, stop: [stop] });
  assert.equal(r.finish, "stop");
  assert.equal(r.text, prefix);
  for (const c of r.chunks) assert.ok(!c.includes(stop));
  const withStop = await run("In the beginning God created", {
    temperature: 0,
    maxTokens: 24,
    ignoreEos: true,
    stop: [stop],
    includeStopStrInOutput: true,
  });
  assert.equal(withStop.text, prefix + stop);
  assert.equal((await engine.stats()).kvBlocksUsed, 0);
});

test("aborting through the signal mid-stream finishes with abort and frees the blocks", async () => {
  const ac = new AbortController();
  let n = 0;
  let finish: string | null = null;
  for await (const d of engine.generate(
    { text: "And God said" },
    { maxTokens: 200, ignoreEos: true },
    { signal: ac.signal },
  )) {
    if (++n === 3) ac.abort();
    if (d.finishReason) finish = d.finishReason;
  }
  assert.equal(finish, "abort");
  // Breaking out of the loop aborts too.
  for await (const _ of engine.generate({ text: "And God said" }, { maxTokens: 200, ignoreEos: true })) break;
  let stats = await engine.stats();
  for (let i = 0; i < 50 && stats.kvBlocksUsed > 0; i++) stats = await engine.stats();
  assert.equal(stats.kvBlocksUsed, 0);
  assert.equal(stats.numRunning, 0);
});

test("bad requests are refused before anything is queued", () => {
  assert.throws(() => engine.generate({ text: "x".repeat(2000) }, {}), PromptTooLongError);
  assert.throws(() => engine.generate({ text: "hello" }, { temperature: -1 }), ParamError);
  assert.throws(() => engine.generate({ tokenIds: [5, 99999] }, {}), ParamError);
  assert.throws(() => engine.generate({ text: "" }, {}), ParamError);
});

test("chat messages go through the template", async () => {
  let text = "";
  for await (const d of engine.generate(
    { messages: [{ role: "user", content: "Recite Genesis 1:1." }] },
    { temperature: 0, maxTokens: 30 },
  )) {
    text += d.text;
  }
  assert.ok(text.length > 10, text);
});
