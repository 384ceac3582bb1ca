/**
 * CUDA-only features: sampling kernels against the host sampler's definitions, CUDA graph capture/replay
 * against eager execution, and a real model end to end against the reference backend. Run on a GPU by
 * device.test.ts and on the CPU emulation of the kernels by emulated.test.ts.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { StepMeta, StorageDType } from "../../src/backends/backend.ts";
import { CudaBackend } from "../../src/backends/cuda/cuda-backend.ts";
import { CudaGraphBackend } from "../../src/backends/cuda/graph-backend.ts";
import { loadModel } from "../../src/models/model.ts";
import { argmax, logSumExp } from "../../src/sampler/sampler.ts";
import { randn, StorageReference } from "../backends/conformance.ts";

const MODEL = fileURLToPath(new URL("../../models/tiny-llama", import.meta.url));

/** Sequential decode: token ids and the step for one sequence of `ids` whose last `add` are new. */
function step(ids: number[], add: number, maxBlocks: number): { meta: StepMeta; rows: Int32Array } {
  const T = add;
  const cached = ids.length - add;
  const positions = Int32Array.from({ length: T }, (_, i) => cached + i);
  return {
    meta: {
      numTokens: T,
      tokenIds: Int32Array.from(ids.slice(cached)),
      positions,
      slotMapping: positions.slice(),
      numSeqs: 1,
      queryStart: Int32Array.from([0, T]),
      seqLens: Int32Array.from([ids.length]),
      blockTables: Int32Array.from({ length: maxBlocks }, (_, i) => i),
      maxBlocksPerSeq: maxBlocks,
    },
    rows: Int32Array.from([T - 1]),
  };
}

/**
 * Registers the suite; the backends come from `CudaBackend` (whichever addon LOOM_CUDA_ADDON selects).
 * `light` (the CPU emulation) runs fewer decode steps and model configurations.
 */
export function runDeviceSuite(name: string, opts: { light?: boolean } = {}): void {
  const light = opts.light ?? false;
  describe(`cuda device features: ${name}`, () => {
    test("sampleGreedy = host argmax (ties → lowest id) and its raw logprob", () => {
      const be = new CudaBackend();
      for (const [rows, vocab] of [
        [1, 7],
        [5, 4096],
        [3, 128256],
      ]) {
        const x = randn(rows * vocab, rows + vocab, 3);
        x[2] = x[5] = 1000; // a tie in row 0
        const buf = be.buffer(rows * vocab);
        be.write(buf, x);
        const lp = new Float32Array(rows);
        const ids = be.sampleGreedy(buf, rows, vocab, { outLogprobs: lp });
        for (let r = 0; r < rows; r++) {
          const row = x.subarray(r * vocab, (r + 1) * vocab);
          assert.equal(ids[r], argmax(row), `row ${r} of ${vocab}`);
          assert.ok(Math.abs(lp[r] - (row[ids[r]] - logSumExp(row))) < 1e-4, `logprob row ${r}`);
        }
      }
      // argmaxRows (the engine's greedy path) rejects bad shapes with a JS error
      const buf = be.buffer(8);
      assert.throws(() => be.argmaxRows(buf, 2, 0, new Int32Array(2)), /cols >= 1/);
      assert.throws(() => be.argmaxRows(buf, 2, 4, new Int32Array(1)), /out shorter than rows/);
      assert.throws(() => be.argmaxRows(buf, 3, 4, new Int32Array(3)), /logits/);
      be.dispose();
    });

    test("sample: inverse-CDF draws in vocabulary order after top-k / top-p / min-p, exactly where u says", () => {
      const be = new CudaBackend();
      const logits = Float32Array.from([0.5, 2, -1, 1.5, 0, 2, -3, 1]);
      const V = logits.length;
      const cases = [
        { temperature: 1, topK: 0, topP: 1, minP: 0 },
        { temperature: 0.7, topK: 3, topP: 1, minP: 0 },
        { temperature: 1.3, topK: 0, topP: 0.6, minP: 0 },
        { temperature: 1, topK: 0, topP: 1, minP: 0.3 },
        { temperature: 1, topK: 1, topP: 1, minP: 0 },
      ];
      for (const c of cases) {
        // The kept set and its weights, as the kernel defines them.
        const mx = Math.max(...logits);
        let keep = Array.from(logits, (_, i) => i);
        if (c.topK > 0) {
          const kth = [...logits].sort((a, b) => b - a)[c.topK - 1];
          keep = keep.filter((i) => logits[i] >= kth);
        }
        const w = Array.from(logits, (l) => Math.exp((l - mx) / c.temperature));
        if (c.topP < 1) {
          const total = keep.reduce((a, i) => a + w[i], 0);
          const sorted = [...keep].sort((a, b) => w[b] - w[a]);
          let mass = 0;
          let t = 0;
          for (const i of sorted) {
            mass += w[i];
            t = w[i];
            if (mass >= c.topP * total) break;
          }
          keep = keep.filter((i) => w[i] >= t);
        }
        keep = keep.filter((i) => w[i] >= c.minP);
        const total = keep.reduce((a, i) => a + w[i], 0);
        // u at the middle of each kept token's CDF interval must pick that token
        let cum = 0;
        const rows = keep.map((i) => {
          const u = (cum + w[i] / 2) / total;
          cum += w[i];
          return { ...c, uniform: u };
        });
        const buf = be.buffer(rows.length * V);
        const x = new Float32Array(rows.length * V);
        for (let r = 0; r < rows.length; r++) x.set(logits, r * V);
        be.write(buf, x);
        const ids = be.sample(buf, rows, V);
        assert.deepEqual(Array.from(ids), keep, JSON.stringify(c));
      }
      be.dispose();
    });

    test("sample on a 5000-token vocabulary: kept set and CDF positions match the definition", () => {
      const be = new CudaBackend();
      const V = 5000;
      const logits = randn(V, 4242, 2);
      for (const c of [
        { temperature: 0.8, topK: 50, topP: 1, minP: 0 },
        { temperature: 1, topK: 0, topP: 0.9, minP: 0 },
        { temperature: 1.2, topK: 200, topP: 0.5, minP: 0.01 },
      ]) {
        const mx = Math.max(...logits);
        const w = Array.from(logits, (l) => Math.exp((l - mx) / c.temperature));
        let keep = Array.from(logits, (_, i) => i);
        if (c.topK > 0) {
          const kth = Float32Array.from(logits).sort().reverse()[c.topK - 1];
          keep = keep.filter((i) => logits[i] >= kth);
        }
        if (c.topP < 1) {
          const total = keep.reduce((a, i) => a + w[i], 0);
          const sorted = [...keep].sort((a, b) => w[b] - w[a]);
          let mass = 0;
          let t = 0;
          for (const i of sorted) {
            mass += w[i];
            t = w[i];
            if (mass >= c.topP * total) break;
          }
          keep = keep.filter((i) => w[i] >= t);
        }
        keep = keep.filter((i) => w[i] >= c.minP);
        const total = keep.reduce((a, i) => a + w[i], 0);
        // every 7th kept token, at the middle of its CDF interval
        const rows: (typeof c & { uniform: number })[] = [];
        const want: number[] = [];
        let cum = 0;
        keep.forEach((i, n) => {
          if (n % 7 === 0) {
            rows.push({ ...c, uniform: (cum + w[i] / 2) / total });
            want.push(i);
          }
          cum += w[i];
        });
        const buf = be.buffer(rows.length * V);
        const x = new Float32Array(rows.length * V);
        for (let r = 0; r < rows.length; r++) x.set(logits, r * V);
        be.write(buf, x);
        assert.deepEqual(Array.from(be.sample(buf, rows, V)), want, JSON.stringify(c));
      }
      be.dispose();
    });

    test("CUDA graphs: captured decode steps replay with the same logits as eager steps", {
      skip: !existsSync(MODEL) && "no model",
    }, () => {
      const eager = new CudaBackend();
      const graphed = new CudaGraphBackend(new CudaBackend(), { maxModelLen: 256, maxBatch: 8 });
      const opts = { maxTokens: 64, numBlocks: 17, blockSize: 16, storage: "bf16" as const, kvDtype: "bf16" as const };
      const a = loadModel(MODEL, eager, opts).graph;
      const b = loadModel(MODEL, graphed, opts).graph;
      const ids = [1, 200, 31, 77, 5, 9, 1000, 3];
      let s = step(ids, ids.length, 16);
      a.forward(s.meta, s.rows);
      b.forward(s.meta, s.rows);
      for (let i = 0; i < (light ? 3 : 6); i++) {
        ids.push((ids.at(-1)! * 7 + 3) % 4096);
        s = step(ids, 1, 16);
        const la = a.forward(s.meta, s.rows).slice();
        const lb = b.forward(s.meta, s.rows).slice();
        let err = 0;
        for (let j = 0; j < la.length; j++) err = Math.max(err, Math.abs(la[j] - lb[j]));
        assert.ok(err < 1e-3, `step ${i}: max |Δ| ${err}`);
      }
      assert.ok(graphed.stats.captures >= 1 && graphed.stats.replays >= (light ? 2 : 4), JSON.stringify(graphed.stats));
      eager.dispose();
      graphed.dispose();
    });

    test("CUDA graphs: a padded batch (3 sequences → graph of 4) replays with eager logits", {
      skip: !existsSync(MODEL) && "no model",
    }, () => {
      const eager = new CudaBackend();
      const graphed = new CudaGraphBackend(new CudaBackend(), { maxModelLen: 256, maxBatch: 8 });
      const opts = { maxTokens: 64, numBlocks: 24, blockSize: 16, storage: "int8" as const, kvDtype: "int8" as const };
      const a = loadModel(MODEL, eager, opts).graph;
      const b = loadModel(MODEL, graphed, opts).graph;
      const seqs = [
        [1, 2, 3],
        [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57],
        [300, 301],
      ];
      const mb = 4;
      const multi = (add: number[]) => {
        const T = add.reduce((x, y) => x + y, 0);
        const meta: StepMeta = {
          numTokens: T,
          tokenIds: new Int32Array(T),
          positions: new Int32Array(T),
          slotMapping: new Int32Array(T),
          numSeqs: seqs.length,
          queryStart: new Int32Array(seqs.length + 1),
          seqLens: new Int32Array(seqs.length),
          blockTables: Int32Array.from({ length: seqs.length * mb }, (_, i) => 1 + i),
          maxBlocksPerSeq: mb,
        };
        const rows = new Int32Array(seqs.length);
        let t = 0;
        seqs.forEach((ids, s) => {
          meta.queryStart[s] = t;
          meta.seqLens[s] = ids.length;
          for (let p = ids.length - add[s]; p < ids.length; p++, t++) {
            meta.tokenIds[t] = ids[p];
            meta.positions[t] = p;
            meta.slotMapping[t] = (1 + s * mb + Math.floor(p / 16)) * 16 + (p % 16);
          }
          rows[s] = t - 1;
        });
        meta.queryStart[seqs.length] = t;
        return { meta, rows };
      };
      let s = multi(seqs.map((q) => q.length));
      a.forward(s.meta, s.rows);
      b.forward(s.meta, s.rows);
      for (let i = 0; i < (light ? 3 : 5); i++) {
        seqs.forEach((q, j) => {
          q.push((q.at(-1)! * 13 + j + i) % 4096);
        });
        s = multi([1, 1, 1]);
        const la = a.forward(s.meta, s.rows).slice();
        const lb = b.forward(s.meta, s.rows).slice();
        let err = 0;
        for (let j = 0; j < la.length; j++) err = Math.max(err, Math.abs(la[j] - lb[j]));
        assert.ok(err < 1e-3, `step ${i}: max |Δ| ${err}`);
      }
      assert.ok(graphed.stats.captures >= 1, JSON.stringify(graphed.stats));
      eager.dispose();
      graphed.dispose();
    });

    test("tiny-llama end to end: prompt and decode logits vs the reference (same stored weights)", {
      skip: !existsSync(MODEL) && "no model",
    }, () => {
      // exact f32 paths: |Δ| < 1e-3 absolute; bf16 tensor cores: < 1e-2 of the largest logit
      const configs: [StorageDType, number, number, boolean][] = [
        ["bf16", Number.POSITIVE_INFINITY, 1e-3, false],
        ["int8", 9, 1e-3, false],
        ["bf16", 9, 1e-2, true],
      ];
      for (const [storage, tc, tol, relative] of light ? configs.slice(1) : configs) {
        const be = new CudaBackend({ tensorCoreMinRows: tc });
        const ref = new StorageReference();
        const opts = { maxTokens: 64, numBlocks: 8, blockSize: 16, storage };
        const a = loadModel(MODEL, be, opts).graph;
        const b = loadModel(MODEL, ref, opts).graph;
        const ids = [1, 40, 41, 42, 300, 2, 17, 99, 1024, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        const all = Int32Array.from({ length: ids.length }, (_, i) => i);
        const s = step(ids, ids.length, 8);
        const la = a.forward(s.meta, all).slice();
        const lb = b.forward(s.meta, all).slice();
        const maxErr = (x: Float32Array, y: Float32Array) => {
          let e = 0;
          let m = 0;
          for (let j = 0; j < x.length; j++) {
            e = Math.max(e, Math.abs(x[j] - y[j]));
            m = Math.max(m, Math.abs(y[j]));
          }
          return relative ? e / m : e;
        };
        const err = maxErr(la, lb);
        assert.ok(err < tol, `${storage} tc≥${tc}: prompt logits max |Δ| ${err}`);
        ids.push(argmax(lb.subarray(lb.length - a.cfg.vocabSize)));
        const d = step(ids, 1, 8);
        const da = a.forward(d.meta, d.rows);
        const db = b.forward(d.meta, d.rows);
        const derr = maxErr(da, db);
        assert.ok(derr < tol, `${storage}: decode logits max |Δ| ${derr}`);
        be.dispose();
      }
    });
  });
}
