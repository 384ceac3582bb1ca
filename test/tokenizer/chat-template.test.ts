import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ChatTemplateError, Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { modelRefFiles, TINY_LLAMA, tempDir, writeFiles } from "./helpers.ts";

/**
 * arch-qwen2.json "long": its prompt_ids split "John 1" as "Ġ" "1" where tokenizer.json (identical in every fixture
 * folder) gives "Ġ1" — as do the same text in the other 8 reference files and tokenizer.json's own reference
 * ("numbers 1234567890" → "Ġ1", ...). The ids decode to the same text; the fixture looks generated with a different
 * pre-tokenizer (Qwen2's single-digit split). Kept visible as a TODO rather than worked around.
 */
const FIXTURE_MISMATCHES = new Set(["arch-qwen2.json long"]);

test("reference prompts: rendered text and prompt ids match transformers", async () => {
  const refs = modelRefFiles();
  assert.ok(refs.length >= 9);
  let chats = 0;
  for (const ref of refs) {
    const tok = await Tokenizer.load(ref.modelDir);
    for (const c of ref.cases) {
      const where = `${ref.file} ${c.name}`;
      if (c.messages) {
        chats++;
        assert.equal(tok.applyChatTemplate(c.messages, { addGenerationPrompt: true }), c.rendered, where);
      } else {
        assert.equal(c.rendered, c.prompt, where);
      }
      assert.equal(tok.decode(c.prompt_ids), c.rendered, where);
      if (!FIXTURE_MISMATCHES.has(where)) assert.deepEqual(tok.encode(c.rendered), c.prompt_ids, where);
    }
  }
  assert.ok(chats > 0);
});

test("arch-qwen2 long: fixture prompt_ids vs tokenizer.json", {
  todo: "fixture disagrees with tokenizer.json",
}, async () => {
  for (const ref of modelRefFiles()) {
    const tok = await Tokenizer.load(ref.modelDir);
    for (const c of ref.cases) {
      const where = `${ref.file} ${c.name}`;
      if (FIXTURE_MISMATCHES.has(where)) assert.deepEqual(tok.encode(c.rendered), c.prompt_ids, where);
    }
  }
});

test("text parts are joined; other content types are refused", async () => {
  const tok = await Tokenizer.load(TINY_LLAMA);
  const parts = [
    { type: "text", text: "Recite" },
    { type: "text", text: "John 3:16." },
  ];
  assert.equal(
    tok.applyChatTemplate([{ role: "user", content: parts }], { addGenerationPrompt: true }),
    "<|im_start|>user\nRecite\nJohn 3:16.<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.equal(
    tok.applyChatTemplate([{ role: "user", content: "hi" }]),
    "<|im_start|>user\nhi<|im_end|>\n",
    "addGenerationPrompt defaults to false, as in transformers",
  );
  assert.throws(
    () => tok.applyChatTemplate([{ role: "user", content: [{ type: "image_url" }] }]),
    (err: Error) => err instanceof ChatTemplateError && /image_url/.test(err.message),
  );
});

async function withTemplate(template: string, config: Record<string, unknown> = {}): Promise<Tokenizer> {
  const dir = tempDir("template");
  copyFileSync(join(TINY_LLAMA, "tokenizer.json"), join(dir, "tokenizer.json"));
  writeFiles(dir, { "tokenizer_config.json": { chat_template: template, ...config } });
  return Tokenizer.load(dir);
}

test("bos_token / eos_token reach the template; unset ones are undefined", async () => {
  const tpl =
    "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}\n{% endfor %}" +
    "{% if pad_token is defined %}pad{% endif %}{% if tools is none %}notools{% endif %}";
  const tok = await withTemplate(tpl, {
    bos_token: { content: "<|endoftext|>", special: true },
    eos_token: "<|im_end|>",
  });
  assert.equal(tok.bosTokenId, 0);
  assert.equal(tok.applyChatTemplate([{ role: "user", content: "hi" }]), "<|endoftext|>user:hi<|im_end|>\nnotools");
});

test("raise_exception in a template becomes a ChatTemplateError", async () => {
  const tpl =
    "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}" +
    "{% endif %}{{ m.content }}{% endfor %}";
  const tok = await withTemplate(tpl);
  assert.equal(tok.applyChatTemplate([{ role: "user", content: "ok" }]), "ok");
  assert.throws(
    () => tok.applyChatTemplate([{ role: "system", content: "x" }]),
    (err: Error) => err instanceof ChatTemplateError && /System role not supported/.test(err.message),
  );
});

test("chat_template.jinja takes precedence; trim_blocks/lstrip_blocks as in transformers", async () => {
  const dir = tempDir("jinja");
  copyFileSync(join(TINY_LLAMA, "tokenizer.json"), join(dir, "tokenizer.json"));
  writeFiles(dir, {
    "tokenizer_config.json": { chat_template: "from config" },
    "chat_template.jinja": "{% for m in messages %}\n  {% if true %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}\n",
  });
  const tok = await Tokenizer.load(dir);
  assert.equal(
    tok.applyChatTemplate([
      { role: "user", content: "a" },
      { role: "user", content: "b" },
    ]),
    "[a]\n[b]\n",
  );
});

test("a template that does not parse fails at use, not at load", async () => {
  const tok = await withTemplate("{% for m in messages %}{{ m.content }");
  assert.equal(tok.hasChatTemplate, true);
  assert.throws(() => tok.applyChatTemplate([{ role: "user", content: "x" }]), ChatTemplateError);
});
