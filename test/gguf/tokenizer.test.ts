// Tokenizers rebuilt from GGUF metadata give the same ids as the Hugging Face tokenizer they came from.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { GgufFile } from "../../src/formats/gguf/reader.ts";
import { ggufTokenizerObjects, writeTokenizerMetadata } from "../../src/formats/gguf/tokenizer-meta.ts";
import { TokenType } from "../../src/formats/gguf/types.ts";
import { GgufWriter } from "../../src/formats/gguf/writer.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { byteFallbackTokenizerJson } from "../tokenizer/helpers.ts";
import { ggufOf, modelDir, ROOT } from "./helpers.ts";

const TINY = modelDir("tiny-llama");
const json = (path: string) => JSON.parse(readFileSync(path, "utf8"));

/** A GGUF (metadata only) holding the tokenizer of an HF folder, parsed back. */
function tokenizerGguf(files: Parameters<typeof writeTokenizerMetadata>[1], vocabSize: number): GgufFile {
  const w = new GgufWriter();
  writeTokenizerMetadata(w, files, vocabSize, () => {});
  return GgufFile.fromBytes(w.toBytes(), "<tokenizer.gguf>");
}

function tinyFiles() {
  const tokenizerConfig = json(join(TINY, "tokenizer_config.json"));
  return {
    tokenizerJson: json(join(TINY, "tokenizer.json")),
    tokenizerConfig,
    generationConfig: json(join(TINY, "generation_config.json")),
    modelConfig: json(join(TINY, "config.json")),
    chatTemplate: tokenizerConfig.chat_template as string,
  };
}

const refCases = (): { text: string; ids: number[]; decoded: string }[] =>
  json(join(ROOT, "test/fixtures/refs/tokenizer.json")).cases;

test("tiny-llama's byte-level BPE from GGUF metadata gives the transformers ids of the refs", async () => {
  const file = tokenizerGguf(tinyFiles(), 4096);
  assert.equal(file.string("tokenizer.ggml.model"), "gpt2");
  assert.equal(file.string("tokenizer.ggml.pre"), "gpt-2");
  const types = file.numberArray("tokenizer.ggml.token_type") as ArrayLike<number>;
  assert.deepEqual(
    [types[0], types[1], types[2], types[3]],
    [TokenType.CONTROL, TokenType.CONTROL, TokenType.CONTROL, TokenType.NORMAL],
  );
  const objs = ggufTokenizerObjects(file);
  const tok = Tokenizer.fromObjects(objs.tokenizerJson, objs.tokenizerConfig, objs.generationConfig);
  const hf = await Tokenizer.load(TINY);
  for (const c of refCases()) {
    assert.deepEqual(tok.encode(c.text), c.ids, `ids of ${JSON.stringify(c.text)}`);
    assert.equal(tok.decode(c.ids), c.decoded, `decode of ${JSON.stringify(c.text)}`);
  }
  assert.deepEqual(tok.eosTokenIds, hf.eosTokenIds);
  assert.equal(tok.bosTokenId, hf.bosTokenId === null ? 0 : hf.bosTokenId); // config.json's bos_token_id 0
  assert.equal(tok.vocabSize, hf.vocabSize);
  assert.deepEqual([...tok.specialTokenIds].sort(), [...hf.specialTokenIds].sort());
  const messages = [
    { role: "user", content: "hi" },
    { role: "assistant", content: "hello" },
  ];
  assert.equal(
    tok.applyChatTemplate(messages, { addGenerationPrompt: true }),
    hf.applyChatTemplate(messages, { addGenerationPrompt: true }),
  );
});

test("Tokenizer.load accepts a .gguf file; the refs prompts tokenize as in transformers", async () => {
  const path = await ggufOf("arch-qwen2", "q8_0");
  const tok = await Tokenizer.load(path);
  for (const c of refCases()) assert.deepEqual(tok.encode(c.text), c.ids);
  for (const c of json(join(ROOT, "test/fixtures/refs/tiny-llama.json")).cases as {
    rendered: string;
    prompt_ids: number[];
  }[]) {
    assert.deepEqual(tok.encode(c.rendered), c.prompt_ids);
  }
});

test("a SentencePiece-style byte-fallback tokenizer survives HF → GGUF (llama) → HF", () => {
  const tj = byteFallbackTokenizerJson();
  const vocabSize = Object.keys((tj.model as { vocab: object }).vocab).length;
  const tokenizerConfig = {
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    add_bos_token: true,
    add_eos_token: false,
  };
  const file = tokenizerGguf(
    { tokenizerJson: tj, tokenizerConfig, generationConfig: null, modelConfig: {}, chatTemplate: null },
    vocabSize,
  );
  assert.equal(file.string("tokenizer.ggml.model"), "llama");
  const types = file.numberArray("tokenizer.ggml.token_type") as ArrayLike<number>;
  assert.equal(types[0], TokenType.UNKNOWN);
  assert.equal(types[1], TokenType.CONTROL);
  assert.equal(types[3 + 0x41], TokenType.BYTE);
  const objs = ggufTokenizerObjects(file);
  const back = Tokenizer.fromObjects(objs.tokenizerJson, objs.tokenizerConfig, objs.generationConfig);
  const orig = Tokenizer.fromObjects(tj, tokenizerConfig, null);
  for (const text of [
    "hello world",
    "hello  world",
    "café",
    "naïve — ünïcödé 🙂",
    "worldhello",
    " leading",
    "</s> x <s>",
    "",
  ]) {
    assert.deepEqual(back.encode(text), orig.encode(text), `ids of ${JSON.stringify(text)}`);
    const ids = orig.encode(text);
    assert.equal(back.decode(ids), orig.decode(ids));
  }
  assert.equal(back.encode("hello")[0], 1, "BOS is added (add_bos_token)");
  assert.deepEqual(back.eosTokenIds, [2]);
});

test("gpt2 GGUF tokenizers with llama3 and qwen2 pre-tokenizers build and split as their regexes do", () => {
  for (const pre of ["llama-bpe", "qwen2", "smollm"]) {
    const w = new GgufWriter();
    const tokens = ["a", "b", "ab", "Ġ", "1", "2", "3", "'", "s", "'s", "<|eot|>"];
    w.string("tokenizer.ggml.model", "gpt2");
    w.string("tokenizer.ggml.pre", pre);
    w.stringArray("tokenizer.ggml.tokens", tokens);
    w.i32Array(
      "tokenizer.ggml.token_type",
      tokens.map((t) => (t.startsWith("<|") ? 3 : 1)),
    );
    w.stringArray("tokenizer.ggml.merges", ["a b", "' s"]);
    w.u32("tokenizer.ggml.eos_token_id", 10);
    const objs = ggufTokenizerObjects(GgufFile.fromBytes(w.toBytes()));
    const tok = Tokenizer.fromObjects(objs.tokenizerJson, objs.tokenizerConfig, objs.generationConfig);
    const ids = tok.encode("ab's<|eot|>");
    assert.deepEqual(ids, [2, 9, 10], pre);
    // llama3 splits digits in runs of up to 3, qwen2 and smollm one by one: each digit is a token either way.
    assert.deepEqual(tok.encode("123"), [4, 5, 6], pre);
  }
});
