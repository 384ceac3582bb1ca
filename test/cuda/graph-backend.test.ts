/**
 * CUDA graph bookkeeping (src/backends/cuda/graph-backend.ts) without a GPU: a fake "capturable"
 * backend — the reference backend whose capture records the ops as closures and whose replay runs them —
 * behind CudaGraphBackend must give the same logits as the plain reference backend on a real model,
 * through prefill, padded decode batches, replays and batch-size changes.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type {
  Activation,
  AttentionParams,
  Buf,
  KvLayer,
  RopeParams,
  StepMeta,
  Weight,
} from "../../src/backends/backend.ts";
import { CudaGraphBackend, type GraphCapable } from "../../src/backends/cuda/graph-backend.ts";
import { ReferenceBackend } from "../../src/backends/reference/reference-backend.ts";
import { loadModel } from "../../src/models/model.ts";
import { argmaxAt } from "../../src/sampler/sampler.ts";

/** The reference backend, plus capture (record closures) and replay (run them) — what CUDA graphs do. */
class RecordingBackend extends ReferenceBackend implements GraphCapable {
  readonly log: string[] = [];
  graphMode = 0;
  #recording: (() => void)[] | null = null;
  readonly #graphs = new Map<number, (() => void)[]>();
  stepRows = 0;

  #run(name: string, f: () => void): void {
    this.log.push(name);
    if (this.#recording) this.#recording.push(f);
    else f();
  }
  setGraphMode(maxSeqLen: number): void {
    this.graphMode = maxSeqLen;
  }
  beginCapture(): void {
    assert.equal(this.#recording, null, "nested capture");
    this.#recording = [];
  }
  endCapture(key: number): void {
    assert.ok(this.#recording, "endCapture without beginCapture");
    this.#graphs.set(key, this.#recording);
    this.#recording = null;
  }
  abortCapture(): void {
    this.#recording = null;
  }
  replayGraph(key: number): void {
    const ops = this.#graphs.get(key);
    assert.ok(ops, `no graph ${key}`);
    this.log.push(`replay:${key}`);
    for (const f of ops) f();
  }
  hasGraph(key: number): boolean {
    return this.#graphs.has(key);
  }
  dropAll(): void {
    this.#graphs.clear();
  }
  override beginStep(meta: StepMeta): void {
    assert.equal(this.#recording, null, "beginStep during capture");
    this.stepRows = meta.numTokens;
    super.beginStep(meta);
  }
  override embed(out: Buf, table: Weight, scale: number): void {
    this.#run("embed", () => super.embed(out, table, scale));
  }
  override rmsNorm(out: Buf, x: Buf, w: Weight, rows: number, dim: number, eps: number, plusOne: boolean): void {
    this.#run(`rmsNorm:${rows}`, () => super.rmsNorm(out, x, w, rows, dim, eps, plusOne));
  }
  override addRmsNorm(out: Buf, r: Buf, x: Buf, w: Weight, rows: number, dim: number, eps: number, p: boolean): void {
    this.#run(`addRmsNorm:${rows}`, () => super.addRmsNorm(out, r, x, w, rows, dim, eps, p));
  }
  override matmul(out: Buf, x: Buf, w: Weight, bias: Weight | null, rows: number): void {
    this.#run(`matmul:${rows}`, () => super.matmul(out, x, w, bias, rows));
  }
  override rope(x: Buf, rows: number, rowStride: number, offset: number, p: RopeParams): void {
    this.#run(`rope:${rows}`, () => super.rope(x, rows, rowStride, offset, p));
  }
  override gatedAct(out: Buf, gu: Buf, rows: number, inter: number, act: Activation): void {
    this.#run(`gatedAct:${rows}`, () => super.gatedAct(out, gu, rows, inter, act));
  }
  override writeKv(kv: KvLayer, qkv: Buf, rowStride: number, k: number, v: number): void {
    this.#run("writeKv", () => super.writeKv(kv, qkv, rowStride, k, v));
  }
  override attention(out: Buf, qkv: Buf, rowStride: number, kv: KvLayer, p: AttentionParams): void {
    this.#run("attention", () => super.attention(out, qkv, rowStride, kv, p));
  }
}

const MODEL = fileURLToPath(new URL("../../models/tiny-llama", import.meta.url));
const BS = 16;
const MAX_TOKENS = 64;
const NUM_BLOCKS = 64;

/** Flat step for sequences given as (all token ids so far, how many of them are new). */
function stepFor(seqs: { ids: number[]; add: number; blocks: number[] }[]): { meta: StepMeta; rows: Int32Array } {
  const maxBlocks = 8;
  const T = seqs.reduce((a, s) => a + s.add, 0);
  const meta: StepMeta = {
    numTokens: T,
    tokenIds: new Int32Array(T),
    positions: new Int32Array(T),
    slotMapping: new Int32Array(T),
    numSeqs: seqs.length,
    queryStart: new Int32Array(seqs.length + 1),
    seqLens: new Int32Array(seqs.length),
    blockTables: new Int32Array(seqs.length * maxBlocks),
    maxBlocksPerSeq: maxBlocks,
  };
  const rows = new Int32Array(seqs.length);
  let t = 0;
  seqs.forEach((s, i) => {
    meta.queryStart[i] = t;
    meta.seqLens[i] = s.ids.length;
    s.blocks.forEach((b, j) => {
      meta.blockTables[i * maxBlocks + j] = b;
    });
    for (let p = s.ids.length - s.add; p < s.ids.length; p++, t++) {
      meta.tokenIds[t] = s.ids[p];
      meta.positions[t] = p;
      meta.slotMapping[t] = s.blocks[Math.floor(p / BS)] * BS + (p % BS);
    }
    rows[i] = t - 1;
  });
  meta.queryStart[seqs.length] = t;
  return { meta, rows };
}

/** tiny-llama in f32 twice: behind CudaGraphBackend over the recording fake (a), and on the plain reference (b). */
function graphedAndPlain(maxBatch: number) {
  const fake = new RecordingBackend();
  const graphed = new CudaGraphBackend(fake, { maxModelLen: 128, maxBatch });
  const opts = { maxTokens: MAX_TOKENS, numBlocks: NUM_BLOCKS, blockSize: BS, storage: "f32" as const };
  const a = loadModel(MODEL, graphed, opts).graph;
  const b = loadModel(MODEL, new ReferenceBackend(), opts).graph;
  return { fake, graphed, a, b };
}

describe("CudaGraphBackend (CUDA graph bookkeeping, simulated capture)", {
  skip: !existsSync(MODEL) && "models/tiny-llama missing",
}, () => {
  test("prefill eager; decode batches padded, warmed, captured, replayed — logits identical to eager", () => {
    const { fake, graphed, a, b } = graphedAndPlain(16);
    const vocab = a.cfg.vocabSize;

    // five sequences, each with its own blocks; prompts of different lengths
    const seqs = Array.from({ length: 5 }, (_, i) => ({
      ids: Array.from({ length: 5 + 3 * i }, (_, j) => (17 * i + 5 * j + 3) % vocab),
      blocks: [2 * i, 2 * i + 1],
    }));
    const run = (batch: typeof seqs, add: number[]) => {
      const s = stepFor(batch.map((q, i) => ({ ...q, add: add[i] })));
      const la = a.forward(s.meta, s.rows).slice();
      const lb = b.forward(s.meta, s.rows).slice();
      assert.deepEqual(la, lb, `logits of batch ${batch.length}`);
      // greedy next token for every sequence of the batch
      batch.forEach((q, i) => {
        const row = lb.subarray(i * vocab, (i + 1) * vocab);
        let best = 0;
        for (let v = 1; v < vocab; v++) if (row[v] > row[best]) best = v;
        q.ids.push(best);
      });
    };

    run(
      seqs,
      seqs.map((q) => q.ids.length),
    ); // prefill: eager
    assert.equal(graphed.stats.eagerSteps, 1);
    assert.equal(fake.graphMode, 0);

    run(seqs.slice(0, 3), [1, 1, 1]); // decode 3 → padded to 4: warm-up (eager in graph mode)
    assert.equal(graphed.stats.warmups, 1);
    assert.ok(fake.log.includes("matmul:4"), "region ops run with the padded row count");
    assert.equal(fake.graphMode, 0, "graph mode is switched off after the region");

    run(seqs.slice(0, 3), [1, 1, 1]); // capture + replay
    assert.equal(graphed.stats.captures, 1);
    assert.equal(graphed.stats.replays, 1);

    fake.log.length = 0;
    run(seqs.slice(0, 4), [1, 1, 1, 1]); // batch 4: same graph, no padding, replay only
    assert.equal(graphed.stats.replays, 2);
    // the region's op calls were no-ops: the replay ran them; only the lm head matmul ran after it
    assert.deepEqual(
      fake.log.filter((l) => l.startsWith("replay:")),
      ["replay:1"],
    );
    assert.ok(!fake.log.includes("embed") && !fake.log.includes("attention"), fake.log.join(" "));
    // (the reference's addRmsNorm calls this.rmsNorm, which logs while the replay runs it)
    const after = fake.log.slice(fake.log.indexOf("replay:1") + 1).filter((l) => !l.startsWith("rmsNorm"));
    assert.deepEqual(after, ["matmul:4"]);

    run(seqs.slice(0, 1), [1]); // batch 1: its own graph (warm-up)
    run(seqs.slice(0, 5), [1, 1, 1, 1, 1]); // batch 5 → 8: warm-up
    run(seqs.slice(0, 5), [1, 1, 1, 1, 1]); // capture
    run(seqs.slice(0, 5), [1, 1, 1, 1, 1]); // replay
    run(seqs.slice(0, 1), [1]); // capture batch 1
    assert.equal(graphed.stats.warmups, 3);
    assert.equal(graphed.stats.captures, 3);
    assert.equal(graphed.stats.replays, 5);

    // a chunk (2 new tokens) is not a decode step: eager
    const before = graphed.stats.eagerSteps;
    seqs[0].ids.push(7);
    run(seqs.slice(0, 1), [2]);
    assert.equal(graphed.stats.eagerSteps, before + 1);
  });

  test("a graph dropped natively (memory reallocated) is captured again without another warm-up", () => {
    const fake = new RecordingBackend();
    const graphed = new CudaGraphBackend(fake, { maxModelLen: 128, maxBatch: 8 });
    const g = loadModel(MODEL, graphed, { maxTokens: MAX_TOKENS, numBlocks: NUM_BLOCKS, blockSize: BS }).graph;
    const s = stepFor([{ ids: [1, 2, 3], add: 3, blocks: [0] }]);
    g.forward(s.meta, s.rows);
    const d = stepFor([{ ids: [1, 2, 3, 4], add: 1, blocks: [0] }]);
    g.forward(d.meta, d.rows); // warm
    g.forward(d.meta, d.rows); // capture
    fake.dropAll();
    g.forward(d.meta, d.rows); // recapture
    assert.deepEqual(
      { warmups: graphed.stats.warmups, captures: graphed.stats.captures, replays: graphed.stats.replays },
      { warmups: 1, captures: 2, replays: 2 },
    );
  });

  test("argmaxRows is offered when the decorated backend offers it, ends the region, and gives the eager ids", () => {
    const { graphed, a, b } = graphedAndPlain(8);
    assert.ok(a.canArgmax);
    const seqs = [
      { ids: [5, 9, 2, 44], blocks: [0] },
      { ids: [7, 3, 11], blocks: [1] },
      { ids: [8], blocks: [2] },
    ];
    const prefill = stepFor(seqs.map((q) => ({ ...q, add: q.ids.length })));
    const ids = new Int32Array(3);
    a.forwardArgmax(prefill.meta, prefill.rows, ids);
    b.forward(prefill.meta, prefill.rows);
    // decode: warm-up, capture + replay, replay; each step's ids equal the eager backend's argmax
    for (let step = 0; step < 3; step++) {
      for (const [i, q] of seqs.entries()) q.ids.push(ids[i]);
      const s = stepFor(seqs.map((q) => ({ ...q, add: 1 })));
      const want = b.forward(s.meta, s.rows);
      a.forwardArgmax(s.meta, s.rows, ids);
      const V = b.cfg.vocabSize;
      assert.deepEqual(
        [...ids],
        [0, 1, 2].map((r) => argmaxAt(want, r * V, V)),
        `step ${step}`,
      );
    }
    assert.deepEqual({ captures: graphed.stats.captures, replays: graphed.stats.replays }, { captures: 1, replays: 2 });

    // an inner backend without the op: the decorator does not offer it either
    const bare = new RecordingBackend() as RecordingBackend & { argmaxRows?: unknown };
    Object.defineProperty(bare, "argmaxRows", { value: undefined });
    assert.equal(new CudaGraphBackend(bare, { maxModelLen: 128, maxBatch: 8 }).argmaxRows, undefined);
  });

  test("an error inside the capture aborts it and leaves the backend usable", () => {
    const fake = new RecordingBackend();
    const graphed = new CudaGraphBackend(fake, { maxModelLen: 128, maxBatch: 8 });
    const g = loadModel(MODEL, graphed, { maxTokens: MAX_TOKENS, numBlocks: NUM_BLOCKS, blockSize: BS }).graph;
    const d = stepFor([{ ids: [1, 2, 3, 4], add: 1, blocks: [0] }]);
    g.forward(d.meta, d.rows); // warm
    const orig = fake.attention.bind(fake);
    fake.attention = () => {
      throw new Error("boom");
    };
    assert.throws(() => g.forward(d.meta, d.rows), /boom/);
    assert.equal(fake.graphMode, 0);
    fake.attention = orig;
    g.forward(d.meta, d.rows); // warm again (the failed entry was reset)
    g.forward(d.meta, d.rows); // capture
    assert.equal(graphed.stats.captures, 1);
  });
});
