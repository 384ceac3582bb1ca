// `loom convert MODEL_DIR OUT.gguf --type T` writes a GGUF that loads back; bad arguments are one-line errors.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { Command } from "commander";
import { registerConvert } from "../../src/cli/convert.ts";
import { GgufFile } from "../../src/formats/gguf/reader.ts";
import { modelDir, tempDir } from "./helpers.ts";

async function run(...argv: string[]): Promise<string[]> {
  const program = new Command().exitOverride();
  registerConvert(program);
  const lines: string[] = [];
  const log = console.log;
  const err = console.error;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  console.error = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    await program.parseAsync(["node", "loom", ...argv]);
  } finally {
    console.log = log;
    console.error = err;
  }
  return lines;
}

test("loom convert writes the metadata and tensors llama.cpp reads", async () => {
  const out = join(tempDir(), "qwen2.gguf");
  const lines = await run("convert", modelDir("arch-qwen2"), out, "--type", "q8_0");
  assert.match(lines.at(-1) ?? "", /^wrote .*qwen2\.gguf: Qwen2ForCausalLM, \d+ tensors, q8_0/);
  const f = GgufFile.open(out);
  try {
    assert.equal(f.string("general.architecture"), "qwen2");
    assert.equal(f.uint("general.file_type"), 7);
    for (const [key, want] of [
      ["qwen2.context_length", 512],
      ["qwen2.embedding_length", 64],
      ["qwen2.block_count", 2],
      ["qwen2.feed_forward_length", 128],
      ["qwen2.attention.head_count", 4],
      ["qwen2.attention.head_count_kv", 2],
      ["qwen2.rope.dimension_count", 16],
      ["tokenizer.ggml.eos_token_id", 2],
    ] as const) {
      assert.equal(f.number(key), want, key);
    }
    assert.equal(f.number("qwen2.rope.freq_base"), 1e6);
    assert.equal(f.number("qwen2.attention.layer_norm_rms_epsilon"), 1e-6);
    assert.equal(f.string("tokenizer.ggml.model"), "gpt2");
    assert.equal(f.stringArray("tokenizer.ggml.tokens")?.length, 4096);
    assert.equal(f.bool("tokenizer.ggml.add_bos_token"), false);
    assert.ok(f.string("tokenizer.chat_template")?.includes("<|im_start|>"));
    const names = [...f.tensors.keys()];
    for (const n of [
      "token_embd.weight",
      "blk.0.attn_q.weight",
      "blk.0.attn_q.bias",
      "blk.1.ffn_down.weight",
      "output_norm.weight",
      "output.weight",
    ]) {
      assert.ok(names.includes(n), n);
    }
    assert.equal(f.tensor("blk.0.attn_q.weight").typeInfo.name, "Q8_0");
    assert.equal(f.tensor("blk.0.attn_norm.weight").typeInfo.name, "F32");
    assert.equal(f.tensor("blk.0.attn_q.bias").typeInfo.name, "F32");
  } finally {
    f.close();
  }
});

test("loom convert refuses an unknown --type and an unsupported architecture", async () => {
  await assert.rejects(
    run("convert", modelDir("arch-qwen2"), join(tempDir(), "x.gguf"), "--type", "q5_k"),
    /--type must be one of f32, f16, bf16, q8_0, q4_0/,
  );
  await assert.rejects(
    run("convert", modelDir("arch-phi3"), join(tempDir(), "x.gguf")),
    /cannot export Phi3ForCausalLM to GGUF/,
  );
  await assert.rejects(
    run("convert", modelDir("arch-gemma3"), join(tempDir(), "x.gguf")),
    /cannot export Gemma3ForCausalLM to GGUF/,
  );
});
