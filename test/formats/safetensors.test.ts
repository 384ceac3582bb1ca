import assert from "node:assert/strict";
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ModelFileError } from "../../src/formats/model-file-error.ts";
import { openSafetensors } from "../../src/formats/safetensors.ts";

const dir = mkdtempSync(join(tmpdir(), "loom-safetensors-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const TINY_LLAMA = fileURLToPath(new URL("../../models/tiny-llama", import.meta.url));

/** A file of: u64 header length (or `headerLen` if given), the header (JSON unless a string or bytes), then `data`. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLen?: bigint): Buffer {
  const json =
    header instanceof Uint8Array
      ? Buffer.from(header)
      : Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

interface Spec {
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** A valid safetensors file holding `tensors` back to back, header space-padded to 8 bytes like real writers. */
function safetensorsBytes(tensors: Record<string, Spec>, metadata: Record<string, string> = { format: "pt" }): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const chunks: Uint8Array[] = [];
  let pos = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + t.data.length] };
    chunks.push(t.data);
    pos += t.data.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  return rawFile(json, Buffer.concat(chunks));
}

const f32 = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);
const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

let fileCounter = 0;
/** Write `content` to a fresh file in the temp dir and return its path. */
function put(content: Uint8Array, name = `t${fileCounter++}.safetensors`): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/** Expect openSafetensors(path) to fail with a one-line ModelFileError naming `file` (and `tensor`) and matching `re`. */
function assertRejects(path: string, re: RegExp, tensor?: string, file = path): void {
  assert.throws(
    () => openSafetensors(path),
    (e: unknown) => {
      assert.ok(e instanceof ModelFileError, `expected a ModelFileError, got ${e}`);
      assert.match(e.message, re);
      assert.ok(e.message.includes(file), `message should name ${file}: ${e.message}`);
      assert.ok(!e.message.includes("\n"), "message should be one line");
      if (tensor !== undefined) {
        assert.ok(e.message.includes(`"${tensor}"`), `message should name tensor ${tensor}: ${e.message}`);
        assert.equal(e.tensor, tensor);
      }
      return true;
    },
  );
}

/** Open file descriptors of this process, where the OS lets us count them (Linux). */
const openFds = () => (existsSync("/proc/self/fd") ? readdirSync("/proc/self/fd").length : undefined);

test("reads a single file: names, info, f32 values and bf16 bytes", () => {
  const bf16 = bytes(8);
  const path = put(
    safetensorsBytes({
      "w.f32": { dtype: "F32", shape: [2, 3], data: f32(1, -2.5, 3.25, 0, 1e-8, -65504) },
      "w.bf16": { dtype: "BF16", shape: [4], data: bf16 },
      "w.f16": { dtype: "F16", shape: [1, 1], data: bytes(2) },
      empty: { dtype: "F32", shape: [0, 5], data: new Uint8Array(0) },
    }),
  );
  const m = openSafetensors(path);
  try {
    assert.deepEqual(m.tensorNames, ["w.f32", "w.bf16", "w.f16", "empty"]);
    assert.ok(m.has("w.bf16"));
    assert.ok(!m.has("nope"));
    assert.ok(!m.has("constructor") && !m.has("__metadata__"));

    const info = m.info("w.bf16");
    const headerLen = Number(readFileSync(path).readBigUInt64LE(0));
    assert.deepEqual(info, {
      name: "w.bf16",
      dtype: "bf16",
      shape: [4],
      file: path,
      offset: 8 + headerLen + 24,
      byteLength: 8,
    });

    const t = m.read("w.f32");
    assert.equal(t.dtype, "f32");
    assert.deepEqual(t.shape, [2, 3]);
    const values = new Float32Array(t.data.buffer, t.data.byteOffset, t.data.length / 4);
    assert.deepEqual([...values], [...new Float32Array([1, -2.5, 3.25, 0, 1e-8, -65504])]);

    const b = m.read("w.bf16");
    assert.equal(b.dtype, "bf16");
    assert.deepEqual(b.data, bf16);
    assert.notEqual(m.read("w.bf16").data, b.data, "each read returns a fresh buffer");
    assert.equal(m.read("w.f16").dtype, "f16");
    assert.equal(m.read("empty").data.length, 0);

    // info() hands out copies: callers can't corrupt the model's view.
    m.info("w.f32").shape.push(7);
    assert.deepEqual(m.info("w.f32").shape, [2, 3]);
  } finally {
    m.close();
  }
});

test("opens a model folder holding model.safetensors; missing tensor names tensor and file", () => {
  const folder = join(dir, "single-model");
  mkdirSync(folder);
  const file = join(folder, "model.safetensors");
  writeFileSync(file, safetensorsBytes({ a: { dtype: "F32", shape: [1], data: f32(42) } }));
  const m = openSafetensors(folder);
  assert.deepEqual(m.tensorNames, ["a"]);
  assert.throws(
    () => m.info("lm_head.weight"),
    (e: unknown) => e instanceof ModelFileError && /"lm_head\.weight"/.test(e.message) && e.message.includes(file),
  );
  assert.throws(() => m.read("lm_head.weight"), ModelFileError);
  m.close();
  m.close(); // idempotent
  assert.throws(() => m.read("a"), /closed/);
});

test("rejects a missing path and a folder without a checkpoint", () => {
  assertRejects(join(dir, "does-not-exist.safetensors"), /no such file/);
  const empty = join(dir, "empty-folder");
  mkdirSync(empty);
  assertRejects(empty, /neither model\.safetensors nor model\.safetensors\.index\.json/);
});

test("rejects truncated files and bad header lengths", () => {
  assertRejects(put(new Uint8Array(0)), /truncated: 0 bytes/);
  assertRejects(put(new Uint8Array(7)), /truncated: 7 bytes/);
  assertRejects(put(rawFile({}, new Uint8Array(0), 1000n)), /truncated: header length 1000 runs past the end/);
  assertRejects(put(rawFile({}, new Uint8Array(0), 200_000_000n)), /header length 200000000 bytes is absurd/);
  assertRejects(put(rawFile({}, new Uint8Array(0), 2n ** 64n - 1n)), /absurd/);
});

test("rejects a header that is not valid JSON or not an object", () => {
  assertRejects(put(rawFile('{"a": {"dtype": "F32",')), /header is not valid JSON/);
  assertRejects(put(rawFile("")), /header is not valid JSON/);
  assertRejects(put(rawFile(new Uint8Array([0x7b, 0xff, 0x7d]))), /header is not valid JSON/);
  assertRejects(put(rawFile([1, 2])), /header is not a JSON object/);
  assertRejects(put(rawFile(null)), /header is not a JSON object/);
  assertRejects(put(rawFile(3)), /header is not a JSON object/);
  assertRejects(put(rawFile({ __metadata__: "x" })), /"__metadata__" is not an object/);
});

test("rejects tensor entries with missing or invalid fields", () => {
  const ok = { dtype: "F32", shape: [1], data_offsets: [0, 4] };
  const file = (entry: unknown) => put(rawFile({ "x.weight": entry }, bytes(4)));
  assertRejects(file("F32"), /entry is not an object/, "x.weight");
  assertRejects(file({ ...ok, dtype: undefined }), /missing or invalid "dtype"/, "x.weight");
  assertRejects(file({ ...ok, dtype: 32 }), /missing or invalid "dtype"/, "x.weight");
  assertRejects(file({ ...ok, shape: undefined }), /missing or invalid "shape"/, "x.weight");
  assertRejects(file({ ...ok, shape: "1" }), /missing or invalid "shape"/, "x.weight");
  assertRejects(file({ ...ok, data_offsets: undefined }), /missing or invalid "data_offsets"/, "x.weight");
  assertRejects(file({ ...ok, data_offsets: [0] }), /missing or invalid "data_offsets"/, "x.weight");
  assertRejects(file({ ...ok, data_offsets: [0, 4, 8] }), /missing or invalid "data_offsets"/, "x.weight");
  assertRejects(file({ ...ok, data_offsets: [-4, 0] }), /missing or invalid "data_offsets"/, "x.weight");
  assertRejects(file({ ...ok, data_offsets: [0, "4"] }), /missing or invalid "data_offsets"/, "x.weight");
});

test("rejects unsupported dtypes", () => {
  for (const [dtype, size] of [
    ["I8", 1],
    ["U8", 1],
    ["F64", 8],
    ["I64", 8],
    ["BOOL", 1],
    ["constructor", 4],
  ] as const) {
    const path = put(rawFile({ "x.weight": { dtype, shape: [2], data_offsets: [0, 2 * size] } }, bytes(2 * size)));
    assertRejects(path, new RegExp(`unsupported dtype "${dtype}"`), "x.weight");
  }
});

test("rejects bad shapes: negative, fractional or too-large dims, element count vs byte length", () => {
  const file = (shape: unknown, end = 8) =>
    put(rawFile({ w: { dtype: "F32", shape, data_offsets: [0, end] } }, bytes(8)));
  assertRejects(file([-2, -1]), /invalid shape \[-2,-1\]/, "w");
  assertRejects(file([1.5]), /invalid shape \[1.5\]/, "w");
  assertRejects(file([2 ** 53]), /invalid shape/, "w");
  assertRejects(file([3]), /shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] hold 8/, "w");
  assertRejects(file([2, 2]), /needs 16 bytes/, "w");
  assertRejects(file([2 ** 40, 2 ** 40]), /needs 4835703278458516698824704 bytes/, "w"); // exact: no float rounding
  assertRejects(file([], 8), /shape \[\] of F32 needs 4 bytes/, "w");
});

test("rejects data_offsets out of range or overlapping", () => {
  const data = bytes(16);
  const entry = (begin: number, end: number) => ({
    dtype: "BF16",
    shape: [(end - begin) / 2],
    data_offsets: [begin, end],
  });
  assertRejects(put(rawFile({ a: entry(0, 18) }, data)), /data_offsets \[0, 18\] run past the end of the file/, "a");
  assertRejects(
    put(rawFile({ a: entry(16, 20) }, data)),
    /run past the end of the file \(data section is 16 bytes\)/,
    "a",
  );
  assertRejects(
    put(rawFile({ a: { dtype: "BF16", shape: [0], data_offsets: [8, 4] } }, data)),
    /\[8, 4\]: begin is after end/,
    "a",
  );
  // Header order differs from data order: the check must sort by offset.
  assertRejects(
    put(rawFile({ b: entry(6, 16), a: entry(0, 8) }, data)),
    /data_offsets \[6, 16\] overlap tensor "a" \[0, 8\]/,
    "b",
  );
  assertRejects(put(rawFile({ a: entry(0, 8), dup: entry(0, 8) }, data)), /overlap/);
  // Touching ranges and empty tensors are fine, and the data section may end with unused bytes.
  const m = openSafetensors(
    put(rawFile({ a: entry(0, 8), b: entry(8, 12), e: { dtype: "F32", shape: [0], data_offsets: [4, 4] } }, data)),
  );
  assert.deepEqual(m.tensorNames, ["a", "b", "e"]);
  m.close();
});

/** A two-shard checkpoint in a fresh folder; `mutate` may edit the weight map before it is written. */
function shardedModel(name: string, mutate?: (weightMap: Record<string, string>) => void): string {
  const folder = join(dir, name);
  mkdirSync(folder);
  const s1 = "model-00001-of-00002.safetensors";
  const s2 = "model-00002-of-00002.safetensors";
  writeFileSync(
    join(folder, s1),
    safetensorsBytes({
      "model.embed_tokens.weight": { dtype: "F32", shape: [2, 2], data: f32(1, 2, 3, 4) },
      "model.norm.weight": { dtype: "BF16", shape: [2], data: bytes(4, 7) },
    }),
  );
  writeFileSync(
    join(folder, s2),
    safetensorsBytes({ "lm_head.weight": { dtype: "F16", shape: [2, 2], data: bytes(8, 3) } }),
  );
  const weightMap: Record<string, string> = {
    "model.embed_tokens.weight": s1,
    "lm_head.weight": s2,
    "model.norm.weight": s1,
  };
  mutate?.(weightMap);
  writeFileSync(
    join(folder, "model.safetensors.index.json"),
    JSON.stringify({ metadata: { total_size: 28 }, weight_map: weightMap }),
  );
  return folder;
}

test("reads a sharded checkpoint, one fd per shard", () => {
  const folder = shardedModel("sharded");
  const fdsBefore = openFds();
  const m = openSafetensors(folder);
  if (fdsBefore !== undefined) assert.equal(openFds(), fdsBefore + 2, "one fd per shard, kept open");
  assert.deepEqual(m.tensorNames, ["model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"]);
  assert.equal(m.info("lm_head.weight").file, join(folder, "model-00002-of-00002.safetensors"));
  assert.equal(m.info("model.norm.weight").file, join(folder, "model-00001-of-00002.safetensors"));
  const emb = m.read("model.embed_tokens.weight");
  assert.deepEqual([...new Float32Array(emb.data.slice().buffer)], [1, 2, 3, 4]);
  assert.deepEqual(m.read("model.norm.weight").data, bytes(4, 7));
  const head = m.read("lm_head.weight");
  assert.equal(head.dtype, "f16");
  assert.deepEqual(head.data, bytes(8, 3));
  assert.throws(() => m.info("missing"), /"missing" not found in .*model\.safetensors\.index\.json/);
  m.close();
  if (fdsBefore !== undefined) assert.equal(openFds(), fdsBefore, "close() releases every fd");

  // The index may also be opened directly.
  const direct = openSafetensors(join(folder, "model.safetensors.index.json"));
  assert.equal(direct.tensorNames.length, 3);
  direct.close();
});

test("rejects broken sharded checkpoints without leaking fds", () => {
  const fdsBefore = openFds();
  const gone = "model-00003-of-00003.safetensors";
  assertRejects(
    shardedModel("sharded-missing-shard", (w) => (w["extra.weight"] = gone)),
    new RegExp(`shard ${gone} \\(holding tensor "extra.weight"\\) is missing`),
    "extra.weight",
    gone,
  );
  assertRejects(
    shardedModel(
      "sharded-absent-tensor",
      (w) => (w["model.layers.0.mlp.up_proj.weight"] = "model-00002-of-00002.safetensors"),
    ),
    /is listed in model\.safetensors\.index\.json but absent from this shard/,
    "model.layers.0.mlp.up_proj.weight",
    "model-00002-of-00002.safetensors",
  );
  assertRejects(
    shardedModel("sharded-escape", (w) => (w["lm_head.weight"] = "../t0.safetensors")),
    /outside the model folder/,
    "lm_head.weight",
    "model.safetensors.index.json",
  );
  assertRejects(
    shardedModel("sharded-bad-value", (w) => ((w as Record<string, unknown>)["lm_head.weight"] = 2)),
    /weight_map value is not a file name/,
    "lm_head.weight",
    "model.safetensors.index.json",
  );
  // A malformed shard is reported against the shard.
  const folder = shardedModel("sharded-bad-shard");
  writeFileSync(join(folder, "model-00002-of-00002.safetensors"), new Uint8Array(3));
  assertRejects(folder, /truncated: 3 bytes/, undefined, "model-00002-of-00002.safetensors");

  const badIndex = join(dir, "bad-index");
  mkdirSync(badIndex);
  writeFileSync(join(badIndex, "model.safetensors.index.json"), "{ not json");
  assertRejects(badIndex, /cannot read index/, undefined, "model.safetensors.index.json");
  writeFileSync(join(badIndex, "model.safetensors.index.json"), '{"weight_map": []}');
  assertRejects(badIndex, /missing or invalid "weight_map"/, undefined, "model.safetensors.index.json");
  if (fdsBefore !== undefined) assert.equal(openFds(), fdsBefore, "failed opens close what they opened");
});

test("reads the bundled tiny-llama checkpoint", () => {
  const m = openSafetensors(TINY_LLAMA);
  try {
    const info = m.info("model.embed_tokens.weight");
    assert.equal(info.dtype, "bf16");
    assert.deepEqual(info.shape, [4096, 384]);
    assert.equal(info.byteLength, 4096 * 384 * 2);
    assert.equal(info.file, join(TINY_LLAMA, "model.safetensors"));
    assert.ok(m.has("model.norm.weight"));
    assert.ok(m.tensorNames.some((n) => n.startsWith("model.layers.0.self_attn.")));

    // Bytes match the file at the reported offset.
    const whole = readFileSync(info.file);
    const emb = m.read("model.embed_tokens.weight");
    assert.ok(Buffer.from(emb.data).equals(whole.subarray(info.offset, info.offset + info.byteLength)));

    // Every tensor reads, and the final norm decodes to finite bf16 values.
    for (const name of m.tensorNames) assert.equal(m.read(name).data.length, m.info(name).byteLength);
    const norm = m.read("model.norm.weight").data;
    for (let i = 0; i < norm.length; i += 2) {
      const f = new Float32Array(new Uint32Array([(norm[i] | (norm[i + 1] << 8)) << 16]).buffer)[0];
      assert.ok(Number.isFinite(f), `norm[${i / 2}] = ${f}`);
    }
  } finally {
    m.close();
  }
});

test("reads tensors beyond 2 GiB in a sparse file", () => {
  const size = 2_200_000_000; // > 2^31; ftruncate leaves it sparse, so this costs no disk
  const high = f32(3.5, -1, 1e30, 2 ** -20);
  const tail = bytes(8, 9);
  // The data offsets depend on the header length, which depends on the offsets' digits: fix the length.
  const build = (dataStart: number) => {
    const highBegin = 2 ** 31 + 4096 - dataStart + 3; // an absolute offset above 2^31, deliberately unaligned
    const header: Record<string, unknown> = {
      low: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      high: { dtype: "F32", shape: [4], data_offsets: [highBegin, highBegin + 16] },
      tail: { dtype: "BF16", shape: [2, 2], data_offsets: [size - dataStart - 8, size - dataStart] },
    };
    return { header: JSON.stringify(header).padEnd(dataStart - 8, " "), highAt: dataStart + highBegin };
  };
  const { header, highAt } = build(512);
  assert.equal(header.length, 512 - 8);
  assert.ok(highAt > 2 ** 31);

  const path = join(dir, "big.safetensors");
  const fd = openSync(path, "w+");
  try {
    const head = rawFile(header, f32(7, 8));
    writeSync(fd, head, 0, head.length, 0);
    ftruncateSync(fd, size);
    writeSync(fd, high, 0, high.length, highAt);
    writeSync(fd, tail, 0, tail.length, size - 8);
  } finally {
    closeSync(fd);
  }
  try {
    assert.equal(statSync(path).size, size);
    const m = openSafetensors(path);
    assert.equal(m.info("high").offset, highAt);
    assert.deepEqual([...new Float32Array(m.read("high").data.slice().buffer)], [...new Float32Array(high.buffer)]);
    assert.deepEqual(m.read("tail").data, tail);
    assert.deepEqual([...new Float32Array(m.read("low").data.slice().buffer)], [7, 8]);
    m.close();
  } finally {
    rmSync(path, { force: true });
  }
});
