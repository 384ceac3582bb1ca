import assert from "node:assert/strict";
import { test } from "node:test";
import { IncrementalDetokenizer } from "../../src/tokenizer/incremental-detokenizer.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { mulberry32 as rng } from "../helpers/mulberry32.ts";
import { byteFallbackModelDir, modelRefFiles, randomSplit, TINY_LLAMA, tokenizerRefCases } from "./helpers.ts";

const tok = await Tokenizer.load(TINY_LLAMA);
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const SAMPLE_TEXTS = [
  ...tokenizerRefCases().map((c) => c.text),
  "naïve café — déjà vu 🙂🚀 漢字 Ελληνικά 👩‍👩‍👧 ½ ﬁ",
  "<|im_start|>assistant\nÉtoile — «quoted» 🙂<|im_end|>\n<|endoftext|>",
  "   spaces   and\ttabs\n\n\n",
];

/** Streams `ids` in the given chunks; returns the pieces and the final flush. */
function stream(t: Tokenizer, chunks: number[][], opts?: { skipSpecialTokens?: boolean; promptIds?: number[] }) {
  const detok = new IncrementalDetokenizer(t, opts);
  const pieces = chunks.map((c) => detok.push(c));
  const flushed = detok.flush();
  const joined = pieces.join("") + flushed;
  assert.equal(detok.text, joined);
  return { pieces, flushed, joined };
}

/** Token sequences: sample texts, reference prompts and greedy outputs, and random ids (mostly invalid UTF-8). */
function sequences(t: Tokenizer): number[][] {
  const rand = rng(1234);
  const seqs = SAMPLE_TEXTS.map((s) => t.encode(s));
  for (const ref of modelRefFiles()) for (const c of ref.cases) seqs.push(c.prompt_ids, c.greedy_ids);
  for (let i = 0; i < 40; i++) {
    seqs.push(Array.from({ length: 1 + Math.floor(rand() * 30) }, () => Math.floor(rand() * t.vocabSize)));
  }
  return seqs;
}

test("tiny-llama: push()* + flush() equals decode(all) for random splits", () => {
  const rand = rng(42);
  for (const ids of sequences(tok)) {
    for (const skipSpecialTokens of [false, true]) {
      const expected = tok.decode(ids, { skipSpecialTokens });
      for (let trial = 0; trial < 8; trial++) {
        const { joined } = stream(tok, randomSplit(ids, rand), { skipSpecialTokens });
        assert.equal(joined, expected, `ids ${JSON.stringify(ids)} skip=${skipSpecialTokens}`);
      }
    }
  }
});

test("tiny-llama: valid text never yields half a character", () => {
  const rand = rng(7);
  for (const text of SAMPLE_TEXTS) {
    const ids = tok.encode(text);
    for (let trial = 0; trial < 8; trial++) {
      const chunks = trial === 0 ? ids.map((id) => [id]) : randomSplit(ids, rand, 3);
      const { pieces, flushed, joined } = stream(tok, chunks);
      assert.equal(joined, text);
      assert.equal(flushed, "");
      for (const p of pieces) {
        assert.ok(!p.includes("\uFFFD"), `piece ${JSON.stringify(p)} of ${JSON.stringify(text)}`);
        assert.ok(!LONE_SURROGATE.test(p), `piece ${JSON.stringify(p)} of ${JSON.stringify(text)}`);
      }
    }
  }
});

test("a character split across pushes is held back until complete", () => {
  const ids = tok.encode("a🙂");
  assert.ok(ids.length >= 3);
  const detok = new IncrementalDetokenizer(tok);
  assert.equal(detok.push(ids.slice(0, 2)), "a");
  for (const id of ids.slice(2, -1)) assert.equal(detok.push([id]), "");
  assert.equal(detok.push(ids.slice(-1)), "🙂");
  assert.equal(detok.flush(), "");
});

test("flush releases an incomplete trailing sequence as U+FFFD", () => {
  const ids = tok.encode("ok🚀").slice(0, -1);
  const detok = new IncrementalDetokenizer(tok);
  assert.equal(detok.push(ids), "ok");
  assert.equal(detok.flush(), "\uFFFD");
  assert.equal(detok.text, tok.decode(ids));
});

test("with promptIds only the generated text is emitted", () => {
  const rand = rng(99);
  const prompt = tok.encode("<|im_start|>user\nSay café<|im_end|>\n<|im_start|>assistant\n");
  for (const text of ["Café 🙂 — done.", " leading space", "<|im_end|>"]) {
    const gen = tok.encode(text);
    for (let trial = 0; trial < 5; trial++) {
      const { joined } = stream(tok, randomSplit(gen, rand), { promptIds: prompt });
      assert.equal(joined, text);
    }
  }
});

test("a prompt ending mid-character: the completed character is emitted", () => {
  const ids = tok.encode("Hi 🙂 there");
  const cut = ids.findIndex((_, i) => tok.decode(ids.slice(0, i + 1)).endsWith("\uFFFD"));
  const { joined } = stream(tok, [ids.slice(cut + 1)], { promptIds: ids.slice(0, cut + 1) });
  assert.equal(joined, "🙂 there");
});

test("byte-fallback (SentencePiece-style) tokenizer: whole characters, leading space handled", async () => {
  const t = await Tokenizer.load(byteFallbackModelDir());
  const rand = rng(5);
  const texts = ["hello wörld café 🙂 — hi", " hello", "é", "🙂🚀 world", "hello  world  "];
  for (const text of texts) {
    const ids = t.encode(text, { addSpecialTokens: false });
    // Sanity: the multi-byte characters really are split into <0xNN> pieces.
    if ([...text].some((ch) => ch.codePointAt(0)! > 0x7f))
      assert.ok(ids.some((id) => t.tokenText(id).startsWith("<0x")));
    const expected = t.decode(ids);
    for (let trial = 0; trial < 10; trial++) {
      const chunks = trial === 0 ? ids.map((id) => [id]) : randomSplit(ids, rand, 3);
      const { pieces, joined } = stream(t, chunks);
      assert.equal(joined, expected, JSON.stringify(text));
      for (const p of pieces) assert.ok(!p.includes("\uFFFD") && !LONE_SURROGATE.test(p), JSON.stringify(p));
    }
  }
  // The decoder strips the first leading space of the whole text only: mid-stream spaces survive.
  const hello = t.encode("hello world", { addSpecialTokens: false });
  assert.deepEqual(
    stream(
      t,
      hello.map((id) => [id]),
    ).pieces,
    ["hello", " world"],
  );
  // With the prompt as context, a generated first token's leading space is kept.
  const prompt = t.encode("hello");
  assert.equal(stream(t, [hello.slice(1)], { promptIds: prompt }).joined, " world");
  // BOS skipped when asked; with it kept the text matches decode() too.
  const withBos = t.encode("café 🙂");
  assert.equal(
    stream(
      t,
      withBos.map((id) => [id]),
      { skipSpecialTokens: true },
    ).joined,
    "café 🙂",
  );
  assert.equal(
    stream(
      t,
      withBos.map((id) => [id]),
    ).joined,
    t.decode(withBos),
  );
});
