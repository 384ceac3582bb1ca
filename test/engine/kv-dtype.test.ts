// --kv-cache-dtype: "auto" follows the checkpoint on native backends and stays f32 on the reference, and the
// KV pool's capacity follows the element size.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuBackend } from "../../src/backends/cpu/cpu-backend.ts";
import { buildCore } from "../../src/engine/build-core.ts";
import { kvBytesPerElement, resolveKvDtype } from "../../src/engine/kv-dtype.ts";
import { DEFAULT_ENGINE_OPTIONS, engineOptionsFrom } from "../../src/engine/options.ts";
import { drain, request } from "./helpers.ts";

const probe = CpuBackend.tryLoad({ threads: 1 });
const NATIVE = "backend" in probe;
if ("backend" in probe) probe.backend.dispose();

test("auto is the checkpoint's 16-bit dtype on native backends and f32 on the reference", () => {
  assert.equal(resolveKvDtype("auto", "cpu", "bfloat16"), "bf16");
  assert.equal(resolveKvDtype("auto", "cuda", "bfloat16"), "bf16");
  assert.equal(resolveKvDtype("auto", "cpu", "float16"), "f16");
  assert.equal(resolveKvDtype("auto", "cpu", "float32"), "f32");
  assert.equal(resolveKvDtype("auto", "cpu", "q8_0"), "bf16");
  assert.equal(resolveKvDtype("auto", "reference", "bfloat16"), "f32");
  for (const d of ["bf16", "f16", "f32", "int8"] as const) assert.equal(resolveKvDtype(d, "reference", "bfloat16"), d);
});

test("bytes per cached element", () => {
  assert.equal(kvBytesPerElement("f32", 64), 4);
  assert.equal(kvBytesPerElement("bf16", 64), 2);
  assert.equal(kvBytesPerElement("f16", 64), 2);
  assert.equal(kvBytesPerElement("int8", 64), 1 + 4 / 64);
});

test("--kv-cache-dtype rejects what it does not know, with the choices", () => {
  assert.equal(engineOptionsFrom({ kvCacheDtype: "bf16" }).kvCacheDtype, "bf16");
  assert.throws(
    () => engineOptionsFrom({ kvCacheDtype: "fp8" }),
    /--kv-cache-dtype must be one of auto, bf16, f16, f32, int8/,
  );
});

test("a bf16 KV cache holds twice the tokens of an f32 one in the same budget, and still generates", async () => {
  const opts = { ...DEFAULT_ENGINE_OPTIONS, backend: "reference" as const, kvCacheMemory: 8 << 20 };
  const f32 = await buildCore({ ...opts, kvCacheDtype: "f32" });
  const bf16 = await buildCore({ ...opts, kvCacheDtype: "bf16" });
  assert.equal(f32.info.kvCacheDtype, "f32");
  assert.equal(bf16.info.kvCacheDtype, "bf16");
  assert.equal(bf16.info.numBlocks, 2 * f32.info.numBlocks);
  const auto = await buildCore(opts);
  assert.equal(auto.info.kvCacheDtype, "f32", "the reference backend keeps f32 under auto");
  bf16.core.addRequest(request([1, 2, 3, 4, 5], { maxTokens: 4, ignoreEos: true }, { id: "x" }));
  assert.equal(drain(bf16.core).tokens.get("x")![0].length, 4);
});

test("the native CPU backend runs tiny-llama (a bf16 checkpoint) with a bf16 KV cache under auto", {
  skip: !NATIVE,
}, async () => {
  const built = await buildCore({ ...DEFAULT_ENGINE_OPTIONS, backend: "cpu", threads: 1, kvCacheMemory: 8 << 20 });
  assert.equal(built.info.kvCacheDtype, "bf16");
});
