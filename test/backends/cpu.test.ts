/**
 * The native CPU backend against the reference: the conformance suite once per kernel set this CPU can
 * run (scalar, avx2, avx512 — forced through the `isa` option, as LOOM_CPU_ISA does), plus error
 * handling. Skipped with a message when the addon is not built.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CpuBackend, type CpuIsa } from "../../src/backends/cpu/cpu-backend.ts";
import { hostF32 } from "../../src/formats/dtype.ts";
import { runConformance } from "./conformance.ts";

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
    runConformance(`cpu-${isa}`, () => new CpuBackend({ isa }));
  }
  // Three threads on any machine: uneven static chunks and more workers than some ops have rows.
  runConformance(`cpu-${isas.at(-1)} (3 threads)`, () => new CpuBackend({ isa: isas.at(-1), threads: 3 }));

  describe("cpu backend: loading and errors", () => {
    test("tryLoad reports an unavailable or unknown ISA as one line instead of throwing", () => {
      const r = CpuBackend.tryLoad({ isa: "bogus" as CpuIsa });
      assert.ok("error" in r && !r.error.includes("\n") && /unknown ISA/.test(r.error), JSON.stringify(r));
    });

    test("describe names the ISA and the thread count", () => {
      const b = new CpuBackend({ threads: 2 });
      assert.match(b.describe(), new RegExp(`${b.isa}, 2 threads`));
      b.dispose();
    });

    test("bad sizes and ids throw JS errors instead of corrupting memory", () => {
      const b = new CpuBackend({ threads: 1 });
      const w = b.weight(hostF32(new Float32Array(12), [3, 4]));
      const x = b.buffer(4);
      const y = b.buffer(2); // needs 3
      assert.throws(() => b.matmul(y, x, w, null, 1), /needs 3 elements/);
      assert.throws(() => b.embed(y, w, 1), /beginStep/);
      b.dispose();
      assert.throws(() => b.buffer(4), /disposed/);
    });
  });
}
