/** Shared helpers of the GGUF tests: converting fixture models to temporary GGUF files, logits, KL. */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ExportType, prepareGguf } from "../../src/formats/gguf/export.ts";
import type { LlamaGraph } from "../../src/models/graph.ts";
import { contiguousStep, type RefFile } from "../../src/models/validate.ts";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export function modelDir(name: string): string {
  const bundled = join(ROOT, "models", name);
  return existsSync(bundled) ? bundled : join(ROOT, "test/fixtures/models", name);
}

const dirs: string[] = [];
process.on("exit", () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "loom-gguf-"));
  dirs.push(d);
  return d;
}

const cache = new Map<string, string>();

/** Converts a fixture model to a GGUF file of `type` in a temporary folder (once per process). */
export async function ggufOf(name: string, type: ExportType, log: (line: string) => void = () => {}): Promise<string> {
  const key = `${name}:${type}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const { writer, close } = await prepareGguf(modelDir(name), type, log);
  const path = join(tempDir(), `${name}-${type}.gguf`);
  try {
    writeFileSync(path, writer.toBytes());
  } finally {
    close();
  }
  cache.set(key, path);
  return path;
}

/** The refs with only the first `cases` cases, each greedy continuation cut to `greedy` tokens. */
export function trimRefs(refs: RefFile, cases: number, greedy: number): RefFile {
  return {
    ...refs,
    cases: refs.cases.slice(0, cases).map((c) => ({
      ...c,
      greedy_ids: c.greedy_ids.slice(0, greedy),
      greedy_top1_top2_gap: c.greedy_top1_top2_gap.slice(0, greedy),
    })),
  };
}

/** Logits of every position of `ids` (one sequence, KV blocks 0..). */
export function promptLogits(graph: LlamaGraph, ids: number[]): Float32Array {
  const rows = Int32Array.from(ids, (_, i) => i);
  return graph.forward(contiguousStep(ids, 0, graph.opts.numBlocks), rows).slice();
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Logit gap between the best and second-best entry. */
export function gap(row: ArrayLike<number>): number {
  let a = Number.NEGATIVE_INFINITY;
  let b = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (v > a) {
      b = a;
      a = v;
    } else if (v > b) b = v;
  }
  return a - b;
}

function logSoftmax(row: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}

/** KL(p ‖ q) in nats between the softmaxes of two logit rows. */
export function kl(pLogits: Float32Array, qLogits: Float32Array): number {
  const lp = logSoftmax(pLogits);
  const lq = logSoftmax(qLogits);
  let s = 0;
  for (let i = 0; i < lp.length; i++) s += Math.exp(lp[i]) * (lp[i] - lq[i]);
  return s;
}
