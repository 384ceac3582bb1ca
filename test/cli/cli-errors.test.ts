// Bad model files through the real CLI: one clear line on stderr, a non-zero exit, no stack trace.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";

const SRC = "test/fixtures/models/arch-llama3-rope";
const REFS = "test/fixtures/refs/arch-llama3-rope.json";
const root = mkdtempSync(join(tmpdir(), "loom-cli-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** A copy of the fixture model whose safetensors bytes (or config) went through `mutate`. */
function brokenModel(name: string, mutate: (st: Buffer) => Buffer, config?: (c: Record<string, unknown>) => void) {
  const dir = join(root, name);
  spawnSync("mkdir", ["-p", dir]);
  for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
    copyFileSync(join(SRC, f), join(dir, f));
  }
  const cfg = JSON.parse(readFileSync(join(SRC, "config.json"), "utf8"));
  config?.(cfg);
  writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
  writeFileSync(join(dir, "model.safetensors"), mutate(readFileSync(join(SRC, "model.safetensors"))));
  return dir;
}

function loom(...args: string[]) {
  return spawnSync(process.execPath, ["bin/loom.js", ...args], { encoding: "utf8" });
}

function headerOf(st: Buffer): {
  json: Record<string, { data_offsets: number[]; shape: number[]; dtype: string }>;
  n: number;
} {
  const n = Number(st.readBigUInt64LE(0));
  return { json: JSON.parse(st.subarray(8, 8 + n).toString("utf8")), n };
}

function withHeader(st: Buffer, edit: (h: ReturnType<typeof headerOf>["json"]) => void): Buffer {
  const { json, n } = headerOf(st);
  edit(json);
  let text = JSON.stringify(json);
  if (text.length > n) throw new Error("edited header grew");
  text = text.padEnd(n, " ");
  return Buffer.concat([st.subarray(0, 8), Buffer.from(text), st.subarray(8 + n)]);
}

const cases: [string, (st: Buffer) => Buffer, RegExp, ((c: Record<string, unknown>) => void)?][] = [
  ["truncated", (st) => st.subarray(0, st.length - 1000), /model\.safetensors.*(past the end|truncated|beyond)/i],
  [
    "header-past-end",
    (st) => {
      const b = Buffer.from(st);
      b.writeBigUInt64LE(BigInt(st.length + 10), 0);
      return b;
    },
    /model\.safetensors.*header/i,
  ],
  [
    "unknown-dtype",
    (st) =>
      withHeader(st, (h) => {
        h["model.norm.weight"].dtype = "I8";
      }),
    /model\.norm\.weight.*dtype|dtype.*model\.norm\.weight/i,
  ],
  [
    "shape-mismatch",
    (st) =>
      withHeader(st, (h) => {
        h["model.norm.weight"].shape = [63];
      }),
    /model\.norm\.weight/,
  ],
  [
    "overlap",
    (st) =>
      withHeader(st, (h) => {
        h["model.norm.weight"].data_offsets = [
          ...h["model.embed_tokens.weight"].data_offsets.map((x, i) => (i ? x - 8 : x)),
        ].map((x, i, a) => (i ? a[0] + 128 : x));
      }),
    /overlap/i,
  ],
  [
    "missing-tensor",
    (st) =>
      withHeader(st, (h) => {
        const v = h["model.norm.weight"];
        delete h["model.norm.weight"];
        h["model.norm.weightX"] = v;
      }),
    /model\.norm\.weight/,
  ],
  [
    "unknown-arch",
    (st) => st,
    /unsupported architecture.*LlamaForCausalLM/,
    (c) => {
      c.architectures = ["FooForCausalLM"];
      c.model_type = "foo";
    },
  ],
];

for (const [name, mutate, expected, config] of cases) {
  test(`loom validate rejects a model with ${name} cleanly`, () => {
    const dir = brokenModel(name, mutate, config);
    const r = loom("validate", "--backend", "reference", "--model", dir, "--refs", REFS);
    assert.notEqual(r.status, 0);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
    assert.match(lines[0], /^loom: /);
    assert.match(lines[0], expected);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
}

test("--debug prints the stack", () => {
  const dir = brokenModel("debug", (st) => st.subarray(0, 4));
  const r = loom("validate", "--debug", "--backend", "reference", "--model", dir, "--refs", REFS);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /\n\s+at /);
});

test("loom validate passes on a good model and exits 0", () => {
  const r = loom("validate", "--backend", "reference", "--model", SRC, "--refs", REFS);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /all 3 cases passed/);
});

test("loom validate runs with the KV cache it is given and rejects an unknown one", () => {
  const args = ["validate", "--backend", "reference", "--model", SRC, "--refs", REFS, "--kv-cache-dtype"];
  const bf16 = loom(...args, "bf16");
  assert.equal(bf16.status, 0, bf16.stderr + bf16.stdout);
  assert.match(bf16.stdout, /KV cache bf16/);
  const bad = loom(...args, "fp8");
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr.trim(), /^loom: --kv-cache-dtype must be one of f32, bf16, f16, int8, got "fp8"$/);
});

test("a missing refs file is one clear line", () => {
  const r = loom("validate", "--backend", "reference", "--model", SRC, "--refs", join(root, "nope.json"));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr.trim(), /^loom: .*nope\.json.*not found$/);
});
