/**
 * The native CPU backend against the reference: the conformance suite once per kernel set this CPU can
 * run (scalar, avx2, avx512, amx — forced through the `isa` option, as LOOM_CPU_ISA does), plus error
 * handling. Skipped with a message when the addon is not built.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { AMX_QUANT_BF16_MIN_ROWS, CpuBackend, type CpuIsa } from "../../src/backends/cpu/cpu-backend.ts";
import { f32ToBf16, hostF32 } from "../../src/formats/dtype.ts";
import { quantizeInt4, quantizeInt8, quantizeInt8Group } from "../../src/formats/quant.ts";
import { type ConformanceOptions, makeStep, runConformance } from "./conformance.ts";

/**
 * The amx GEMM multiplies int8/int4 weights as bf16 (cpu-backend.ts), the avx512 panels on AVX512-VNNI int8
 * activation codes; every other kernel set the exact x̂ by (nearly) exact activations.
 */
const conformanceOptions = (isa: CpuIsa, quantPanels = false): ConformanceOptions =>
  isa === "amx"
    ? { quantGemmBf16FromRows: AMX_QUANT_BF16_MIN_ROWS }
    : quantPanels
      ? { quantPanelActivations: true }
      : {};

/** The avx512 kernel set without its VNNI and BF16 kernels: the path of AVX-512 CPUs that lack them. */
function plainAvx512(): CpuBackend {
  const be = new CpuBackend({ isa: "avx512" });
  be.setQuantPanels(false);
  be.setBf16Dot(false);
  return be;
}

/** Whether `isa`'s int8/int4 weights go into the VNNI panels on this CPU. */
function usesQuantPanels(isa: CpuIsa): boolean {
  const be = new CpuBackend({ isa, threads: 1 });
  const on = be.quantPanels;
  be.dispose();
  return on;
}

const probe = CpuBackend.tryLoad({ threads: 1 });
const skip = "error" in probe ? `native CPU backend unavailable: ${probe.error}` : false;
if ("backend" in probe) probe.backend.dispose();

if (skip) {
  test("native CPU backend", { skip }, () => {});
} else {
  const isas = CpuBackend.supportedIsas();
  for (const isa of ["scalar", "avx2", "avx512", "amx"] as CpuIsa[]) {
    if (!isas.includes(isa)) {
      test(`conformance: cpu-${isa}`, { skip: `this CPU cannot run ${isa}` }, () => {});
      continue;
    }
    runConformance(`cpu-${isa}`, () => new CpuBackend({ isa }), conformanceOptions(isa, usesQuantPanels(isa)));
  }
  // On a CPU with AVX512-VNNI, int8/int4 weights are stored in panels for quant_panels.inc, and with AVX512-BF16
  // bf16 GEMMs run bf16_dot.inc; the row-major GEMV and f32 panel GEMM they replace there (the path of AVX-512
  // CPUs without VNNI or BF16) are checked too.
  if (isas.includes("avx512")) {
    runConformance("cpu-avx512 (no VNNI/BF16 kernels: row-major int8/int4, f32 panel GEMM)", plainAvx512, {});
  }
  // Three threads on any machine: uneven static chunks and more workers than some ops have rows.
  const best = isas.at(-1) as CpuIsa;
  runConformance(
    `cpu-${best} (3 threads)`,
    () => new CpuBackend({ isa: best, threads: 3 }),
    conformanceOptions(best, usesQuantPanels(best)),
  );

  test("a NaN or ±inf activation makes its own row of a matmul non-finite and no other, on every kernel set and storage", () => {
    const [N, K] = [40, 96];
    const r = { seed: 7 };
    const rand = () => {
      r.seed = (r.seed * 1103515245 + 12345) % 2 ** 31;
      return r.seed / 2 ** 31 - 0.5;
    };
    const wv = Float32Array.from({ length: N * K }, rand);
    const kernelSets: [string, () => CpuBackend][] = isas.map((isa) => [isa, () => new CpuBackend({ isa })]);
    if (isas.includes("avx512")) kernelSets.push(["avx512 without VNNI/BF16 kernels", plainAvx512]);
    for (const [name, make] of kernelSets) {
      const b = make();
      try {
        for (const storage of ["f32", "f16", "bf16", "int8", "int4"] as const) {
          const w = b.weight(hostF32(wv, [N, K]), storage);
          // 1 and 3 rows: the GEMV; 12 and 40: the GEMM paths
          for (const rows of [1, 3, 12, 40]) {
            const xv = Float32Array.from({ length: rows * K }, rand);
            xv[5] = Number.NaN; // row 0
            if (rows > 1) xv[(rows - 1) * K + 70] = Number.POSITIVE_INFINITY;
            const x = b.buffer(rows * K);
            b.write(x, xv);
            const y = b.buffer(rows * N);
            b.matmul(y, x, w, null, rows);
            const out = new Float32Array(rows * N);
            b.read(y, out);
            for (let row = 0; row < rows; row++) {
              const bad = row === 0 || row === rows - 1;
              for (let n = 0; n < N; n++)
                assert.equal(
                  Number.isFinite(out[row * N + n]),
                  !bad,
                  `${name} ${storage} rows=${rows}: row ${row} output ${n} is ${out[row * N + n]}`,
                );
            }
          }
        }
      } finally {
        b.dispose();
      }
    }
  });

  test("KV rows are stored as quant.ts / dtype.ts convert them, bit for bit, on every kernel set", () => {
    // attention over a single key returns its V row as stored (bf16: widened; int8: code × scale), so a
    // code or a rounding off by one shows
    const u32 = new Uint32Array(1);
    const f32 = new Float32Array(u32.buffer);
    const fromBits = (b: number) => {
      u32[0] = b >>> 0;
      return f32[0];
    };
    const stored: Record<"bf16" | "int8", (row: Float32Array) => Float32Array> = {
      bf16: (row) => row.map((x) => fromBits(f32ToBf16(x) << 16)),
      int8: (row) => {
        const codes = new Int8Array(row.length);
        const d = quantizeInt8Group(row, 0, row.length, codes, 0);
        return Float32Array.from(codes, (c) => Math.fround(c * d));
      },
    };
    for (const isa of isas) {
      const be = new CpuBackend({ isa, threads: 2 });
      for (const kvDtype of ["bf16", "int8"] as const)
        for (const D of [64, 40, 8]) {
          const H = 2;
          const stride = 3 * H * D;
          const qkv = new Float32Array(stride);
          for (let i = 0; i < stride; i++) qkv[i] = Math.sin(i * 1.7 + D) * 0.3;
          for (let h = 0; h < H; h++) {
            const v = 2 * H * D + h * D;
            const d = 2 ** -(6 + h);
            qkv[v] = 127 * d;
            for (let i = 1; i < D; i++) {
              // int8: values exactly half-way between two codes (the scale is 2⁻ᵉ, so (k + ½)·2⁻ᵉ is exact),
              // two in three nudged by about an ulp either way; bf16: ties of its rounding, denormals
              const x = (((i * 37) % 250) - 125 + 0.5) * d;
              qkv[v + i] =
                kvDtype === "int8"
                  ? i % 3 === 0
                    ? x
                    : x * (1 + (i % 2 ? 1 : -1) * 2 ** -23)
                  : i % 2 === 0 // ties, half of them on an odd bf16 (0x3f80 + i + i/2), both signs
                    ? fromBits((0x3f80_8000 + ((i + i / 2) << 16)) | ((i & 4) << 29))
                    : i % 4 === 1
                      ? fromBits(0x0000_8000 + i * 0x1_0001)
                      : x;
            }
          }
          const kv = be.kvLayer(2, 16, H, D, kvDtype);
          be.beginStep(makeStep([{ cached: 0, add: 1, blocks: [1] }], 16));
          const xb = be.buffer(stride);
          be.write(xb, qkv);
          be.writeKv(kv, xb, stride, H * D, 2 * H * D);
          const out = be.buffer(H * D);
          be.attention(out, xb, stride, kv, {
            numHeads: H,
            numKvHeads: H,
            headDim: D,
            scale: D ** -0.5,
            slidingWindow: 0,
            softcap: 0,
          });
          const got = new Float32Array(H * D);
          be.read(out, got);
          const want = new Float32Array(H * D);
          for (let h = 0; h < H; h++) {
            const v = 2 * H * D + h * D;
            want.set(stored[kvDtype](qkv.subarray(v, v + D)), h * D);
          }
          assert.deepEqual(got, want, `${isa}, KV ${kvDtype}, headDim ${D}`);
        }
      be.dispose();
    }
  });

  test("the ISA objects export only their getter: no inline function compiled for an ISA can be merged into another", (t) => {
    // README (native/cpu): an out-of-line copy of an inline function (a weak symbol) emitted by, say, the
    // AVX-512 object could be the one the linker keeps for the portable code, which would then fault on a CPU
    // without AVX-512.
    const root = fileURLToPath(new URL("../../build/Release/obj.target", import.meta.url));
    const objects = ["scalar", "avx2", "avx512", "amx"]
      .map((isa) => [isa, join(root, `loom_cpu_${isa}`, "native", "cpu", `kernels_${isa}.o`)] as const)
      .filter(([, f]) => existsSync(f));
    const nm = spawnSync("nm", ["--version"]);
    if (objects.length === 0 || nm.status !== 0) {
      t.skip("no kernel objects or no nm");
      return;
    }
    for (const [isa, f] of objects) {
      const out = spawnSync("nm", ["-C", "--defined-only", f], { encoding: "utf8" }).stdout;
      // global (upper-case type) or weak symbols
      const exported = out
        .split("\n")
        .filter((l) => /^\S+ [A-Zvw] /.test(l))
        .map((l) => l.slice(l.indexOf(" ", l.indexOf(" ") + 1) + 1));
      assert.deepEqual(exported, [`loom::kernels_${isa}()`], f);
    }
  });

  describe("cpu backend: loading and errors", () => {
    test("tryLoad reports an unavailable or unknown ISA as one line instead of throwing", () => {
      const r = CpuBackend.tryLoad({ isa: "bogus" as CpuIsa });
      assert.ok("error" in r && !r.error.includes("\n") && /unknown ISA/.test(r.error), JSON.stringify(r));
    });
    test("addonPath loads another build of the addon beside the default one, and a missing one is an error", () => {
      const built = fileURLToPath(new URL("../../build/Release/loom_cpu.node", import.meta.url));
      const copy = join(mkdtempSync(join(tmpdir(), "loom-addon-")), "loom_cpu.node");
      copyFileSync(built, copy);
      const a = new CpuBackend({ threads: 1 });
      const b = new CpuBackend({ threads: 1, addonPath: copy });
      try {
        const w = hostF32(
          Float32Array.from({ length: 12 }, (_, i) => i - 5),
          [3, 4],
        );
        const out = [a, b].map((be) => {
          const x = be.buffer(4);
          be.write(x, Float32Array.of(1, -2, 3, 0.5));
          const y = be.buffer(3);
          be.matmul(y, x, be.weight(w, "f32"), null, 1);
          const r = new Float32Array(3);
          be.read(y, r);
          return [...r];
        });
        assert.deepEqual(out[1], out[0]);
        assert.deepEqual(out[0], [-5 + 8 - 9 - 1, -1 + 0 + 3 + 1, 3 - 8 + 15 + 3]);
      } finally {
        a.dispose();
        b.dispose();
      }
      const missing = CpuBackend.tryLoad({ addonPath: join(tmpdir(), "no-such-dir", "loom_cpu.node") });
      assert.ok("error" in missing && /not found/.test(missing.error), JSON.stringify(missing));
    });

    test("weights share 32 MB chunks (a matrix over 8 MB gets its own), each intact beside the others", () => {
      const b = new CpuBackend({ threads: 2 });
      try {
        assert.equal(b.weightChunks, 0);
        // 40 matrices of 64 × 100 f32 (25.6 KB each, one chunk), row r of matrix i all (i·1000 + r)
        const [N, K] = [64, 100];
        const mats = Array.from({ length: 40 }, (_, i) => {
          const v = new Float32Array(N * K);
          for (let r = 0; r < N; r++) v.fill(i * 1000 + r, r * K, (r + 1) * K);
          return b.weight(hostF32(v, [N, K]), "f32");
        });
        assert.equal(b.weightChunks, 1);
        const big = b.weight(hostF32(new Float32Array(2304 * 1024), [2304, 1024]), "f32"); // 9.4 MB
        assert.equal(b.weightChunks, 2);
        const small = b.weight(hostF32(new Float32Array(64 * 32), [64, 32]), "f32");
        assert.equal(b.weightChunks, 2, "small weights keep filling the shared chunk");
        // x = e₀: y[r] = W[r][0], exact, so any overlap between neighbouring blocks would show
        const x = b.buffer(K);
        b.write(
          x,
          Float32Array.from({ length: K }, (_, k) => (k === 0 ? 1 : 0)),
        );
        const y = b.buffer(N);
        const out = new Float32Array(N);
        mats.forEach((w, i) => {
          b.matmul(y, x, w, null, 1);
          b.read(y, out);
          assert.deepEqual(
            [...out],
            Array.from({ length: N }, (_, r) => i * 1000 + r),
            `matrix ${i}`,
          );
        });
        assert.ok(big && small);
      } finally {
        b.dispose();
      }
    });

    test("describe names the ISA, the VNNI and BF16 kernels where they run, and the thread count", () => {
      const b = new CpuBackend({ threads: 2 });
      assert.match(b.describe(), new RegExp(`\\(${b.isa}( \\+ VNNI)?( \\+ BF16)?, 2 threads\\)`));
      b.setQuantPanels(false);
      b.setBf16Dot(false);
      assert.match(b.describe(), new RegExp(`\\(${b.isa}, 2 threads\\)`));
      b.dispose();
    });

    test("int8/int4 matmul on AVX512-VNNI (weights in 16-row panels): each row's output is the same, bit for bit, alone (GEMV) and in any batch (GEMM)", (t) => {
      const b = new CpuBackend({ threads: 2 });
      try {
        if (!b.describe().includes("+ VNNI")) {
          t.skip("the panels need AVX512-VNNI (elsewhere the GEMV and the GEMM round differently)");
          return;
        }
        const wave = (i: number, f: number) => Math.sin(i * f) * (1 + (i % 7));
        for (const [storage, N, K] of [
          ["int8", 45, 100], // a partial panel and a K tail
          ["int8", 96, 64],
          ["int8", 130, 960],
          ["int4", 45, 100],
          ["int4", 130, 960],
        ] as const) {
          const w = b.weight(
            hostF32(
              Float32Array.from({ length: N * K }, (_, i) => wave(i, 0.37)),
              [N, K],
            ),
            storage,
          );
          const bias = b.weight(
            hostF32(
              Float32Array.from({ length: N }, (_, i) => wave(i, 1.3)),
              [N],
            ),
            "f32",
          );
          const ROWS = 40;
          const xs = Float32Array.from({ length: ROWS * K }, (_, i) => wave(i, 0.91) * 0.1);
          const run = (rows: number) => {
            const x = b.buffer(rows * K);
            b.write(x, xs.subarray(0, rows * K));
            const y = b.buffer(rows * N);
            b.matmul(y, x, w, bias, rows);
            const out = new Float32Array(rows * N);
            b.read(y, out);
            return out;
          };
          const all = run(ROWS);
          for (const rows of [1, 2, 3, 7, 8, 9, 13])
            assert.deepEqual(run(rows), all.subarray(0, rows * N), `${storage} ${N}x${K}, ${rows} rows`);
        }
      } finally {
        b.dispose();
      }
    });

    test("weightQuantized stores quant.ts codes as they are: the same products as quantizing at load", () => {
      const b = new CpuBackend({ threads: 2 });
      // int8: a group whose largest value is 127·2⁻⁶ has the scale 2⁻⁶ (exact in f16), so (k + ½)·2⁻⁶ is
      // exactly half-way between two codes; int4: a group from 0 to 15/16 has d = 1/16 and m = 0, so
      // (k + ½)/16 is. Every other value of such rows is a tie, the rest nudged by ~an ulp.
      const nudge = (i: number) => (i % 2 ? 1 : 1 + ((i >> 1) % 2 ? 1 : -1) * 2 ** -23);
      const halves8 = (i: number) => (i % 32 === 0 ? 127 / 64 : ((((i * 37) % 250) - 125 + 0.5) / 64) * nudge(i));
      const halves4 = (i: number) =>
        i % 32 === 0 ? 0 : i % 32 === 1 ? 15 / 16 : ((((i * 7) % 15) + 0.5) / 16) * nudge(i);
      for (const [rows, cols, amp] of [
        [7, 45, 1],
        [33, 96, 1],
        [3, 64, 1e7], // int8 scales saturate at f16's 65504
        [5, 96, 0], // int8 ties
        [5, 96, -1], // int4 ties
      ]) {
        const vals = Float32Array.from({ length: rows * cols }, (_, i) =>
          amp === 0 ? halves8(i) : amp < 0 ? halves4(i) : Math.sin(i * 1.7) * (1 + (i % 5)) * amp,
        );
        const x = b.buffer(2 * cols);
        b.write(
          x,
          Float32Array.from({ length: 2 * cols }, (_, i) => Math.cos(i * 0.3)),
        );
        for (const [kind, quantize] of [
          ["int8", quantizeInt8],
          ["int4", quantizeInt4],
        ] as const) {
          const direct = b.weightQuantized(quantize(vals, rows, cols));
          const atLoad = b.weight(hostF32(vals, [rows, cols]), kind);
          assert.equal(direct.storage, kind);
          const out = (w: typeof direct, n: number) => {
            const y = b.buffer(n * rows);
            b.matmul(y, x, w, null, n);
            const r = new Float32Array(n * rows);
            b.read(y, r);
            return r;
          };
          for (const n of [1, 2]) {
            const got = out(direct, n);
            assert.ok(got.every(Number.isFinite), `${kind} ${rows}x${cols}: non-finite output`);
            assert.deepEqual(got, out(atLoad, n), `${kind} ${rows}x${cols} rows ${n}`);
          }
        }
      }
      assert.throws(() => b.weightQuantized({ ...quantizeInt8(new Float32Array(64), 2, 32), rows: 3 }), /shorter/);
      b.dispose();
    });

    test("idle prefetch: once a GEMV order has been seen, helpers prefetch each next matrix; results unchanged", async () => {
      const b = new CpuBackend({ threads: 2 });
      const [N, K] = [512, 512]; // enough work for both threads
      const vals = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37));
      const ws = (["int8", "bf16", "int4"] as const).map((st) => b.weight(hostF32(vals, [N, K]), st));
      const x = b.buffer(K);
      b.write(
        x,
        Float32Array.from({ length: K }, (_, i) => Math.cos(i)),
      );
      const y = b.buffer(N);
      const pass = () =>
        ws.map((w) => {
          b.matmul(y, x, w, null, 1);
          const r = new Float32Array(N);
          b.read(y, r);
          return r;
        });
      const first = pass(); // learns the order
      const before = b.idlePrefetches;
      // A helper runs idle work only when it gets a core during a job: on a loaded machine give it time.
      for (let i = 0; i < 200 && b.idlePrefetches === before; i++) {
        assert.deepEqual(pass(), first);
        await new Promise((r) => setTimeout(r, 1));
      }
      assert.ok(b.idlePrefetches > before, "helpers never prefetched the next matrix");
      b.setIdlePrefetch(false);
      const off = b.idlePrefetches;
      for (let i = 0; i < 5; i++) assert.deepEqual(pass(), first);
      assert.equal(b.idlePrefetches, off);
      b.dispose();
    });

    test("bad sizes and ids throw JS errors instead of corrupting memory", () => {
      const b = new CpuBackend({ threads: 1 });
      const w = b.weight(hostF32(new Float32Array(12), [3, 4]));
      const x = b.buffer(4);
      const y = b.buffer(2); // needs 3
      assert.throws(() => b.matmul(y, x, w, null, 1), /needs 3 elements/);
      assert.throws(() => b.embed(y, w, 1), /beginStep/);
      assert.throws(() => b.argmaxRows(y, 2, 2, new Int32Array(2)), /needs 4 elements/);
      assert.throws(() => b.argmaxRows(x, 2, 2, new Int32Array(1)), /out shorter than rows/);
      assert.throws(() => b.argmaxRows(x, 1, 0, new Int32Array(1)), /cols >= 1/);
      b.dispose();
      assert.throws(() => b.buffer(4), /disposed/);
    });
  });
}
