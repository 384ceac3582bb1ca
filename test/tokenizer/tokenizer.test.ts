import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { byteFallbackModelDir, modelRefFiles, TINY_LLAMA, tempDir, tokenizerRefCases, writeFiles } from "./helpers.ts";

const tok = await Tokenizer.load(TINY_LLAMA);

test("every reference case encodes to its ids and decodes to its text", () => {
  const cases = tokenizerRefCases();
  assert.ok(cases.length > 10);
  for (const c of cases) {
    assert.deepEqual(tok.encode(c.text), c.ids, `encode ${JSON.stringify(c.text)}`);
    assert.equal(tok.decode(c.ids), c.decoded, `decode ${JSON.stringify(c.text)}`);
  }
});

test("reference greedy outputs decode to their text (special tokens kept, invalid bytes as U+FFFD)", () => {
  for (const ref of modelRefFiles()) {
    for (const c of ref.cases) assert.equal(tok.decode(c.greedy_ids), c.greedy_text, `${ref.file} ${c.name}`);
  }
});

test("special tokens, eos and bos of tiny-llama", () => {
  assert.equal(tok.vocabSize, 4096);
  assert.deepEqual(tok.eosTokenIds, [2, 0]);
  assert.equal(tok.bosTokenId, null);
  assert.deepEqual([...tok.specialTokenIds].sort(), [0, 1, 2]);
  const ids = tok.encode("<|im_start|>user\nhi<|im_end|>\n");
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "user\nhi\n");
  assert.equal(tok.decode(ids), "<|im_start|>user\nhi<|im_end|>\n");
});

test("decode drops ids outside the vocabulary; empty input decodes to empty text", () => {
  assert.equal(tok.decode([]), "");
  assert.equal(tok.decode([42, 99999, -1]), tok.decode([42]));
});

test("tokenText returns the raw vocabulary piece", () => {
  assert.equal(tok.tokenText(223), "Ġ");
  assert.equal(tok.tokenText(2), "<|im_end|>");
  assert.equal(tok.tokenText(123456), "");
});

test("some characters span several byte-level tokens", () => {
  for (const ch of ["é", "—", "🙂"]) {
    const ids = tok.encode(ch);
    assert.ok(ids.length > 1, `${ch} → ${ids}`);
    assert.equal(tok.decode(ids), ch);
    assert.ok(tok.decode(ids.slice(0, 1)).endsWith("\uFFFD"));
  }
});

test("loading a missing folder names tokenizer.json", async () => {
  const dir = join(TINY_LLAMA, "..", "does-not-exist");
  await assert.rejects(Tokenizer.load(dir), (err: Error) => {
    assert.match(err.message, /tokenizer\.json/);
    assert.ok(err.message.includes(dir));
    return true;
  });
});

test("an invalid tokenizer.json is reported with its path", async () => {
  const bad = writeFiles(tempDir("badjson"), { "tokenizer.json": "{ not json" });
  await assert.rejects(Tokenizer.load(bad), new RegExp(`invalid JSON in ${join(bad, "tokenizer.json")}`));
  const wrong = writeFiles(tempDir("badtok"), { "tokenizer.json": { hello: 1 } });
  await assert.rejects(Tokenizer.load(wrong), new RegExp(`invalid tokenizer ${join(wrong, "tokenizer.json")}`));
});

test("missing optional files: eos from config.json, no chat template", async () => {
  const dir = tempDir("minimal");
  copyFileSync(join(TINY_LLAMA, "tokenizer.json"), join(dir, "tokenizer.json"));
  writeFiles(dir, { "config.json": { eos_token_id: 2 } });
  const t = await Tokenizer.load(dir);
  assert.deepEqual(t.eosTokenIds, [2]);
  assert.equal(t.hasChatTemplate, false);
  assert.throws(() => t.applyChatTemplate([{ role: "user", content: "hi" }]), /no chat template/);
  assert.deepEqual(t.encode("Hello, world!"), [42, 398, 81, 14, 987, 3]);
});

test("BOS follows add_bos_token whatever the post-processor does", async () => {
  const withBos = await Tokenizer.load(byteFallbackModelDir({ add_bos_token: true }));
  const noBos = await Tokenizer.load(byteFallbackModelDir({ add_bos_token: false }));
  const defaultBos = await Tokenizer.load(byteFallbackModelDir({ add_bos_token: undefined }));
  const plain = withBos.encode("hello", { addSpecialTokens: false });
  assert.equal(withBos.bosTokenId, 1);
  assert.deepEqual(withBos.encode("hello"), [1, ...plain]);
  assert.deepEqual(noBos.encode("hello"), plain);
  // No add_bos_token in the config: the tokenizer.json post-processor (TemplateProcessing with <s>) decides.
  assert.deepEqual(defaultBos.encode("hello"), [1, ...plain]);
  assert.deepEqual(withBos.eosTokenIds, [2]);
});

test("byte-fallback tokenizer: bytes pieces for unknown characters, Strip removes the leading space", async () => {
  const t = await Tokenizer.load(byteFallbackModelDir());
  const text = "hello wörld café 🙂";
  const ids = t.encode(text, { addSpecialTokens: false });
  assert.ok(ids.map((i) => t.tokenText(i)).includes("<0xF0>"));
  assert.equal(t.decode(ids), text);
  assert.equal(t.decode(t.encode(text)), "<s> " + text);
  assert.equal(t.decode(t.encode(text), { skipSpecialTokens: true }), text);
});
