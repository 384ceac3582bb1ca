/**
 * `loom validate`: recompute every case of a reference file (the format of the transformers refs:
 * `<model>.json` plus `<model>.logits.safetensors` beside it) and compare logits and greedy ids.
 *
 * Per case: max |Δ| over the stored top-32 logits of every prompt position, |Δ| of the log-sum-exp, and
 * whether our greedy continuation (computed incrementally through the paged KV cache, as serving does)
 * reproduces the stored one. A divergence right after a step whose stored top1–top2 gap is under the
 * tolerance (at least 1e-3) is a near-tie, not a failure: when every logit may move by the tolerance, two
 * that close may swap (a bf16 tolerance on GPU tensor cores meets such ties on long prompts).
 */
import { existsSync, readFileSync } from "node:fs";
import type { HostTensor, StepMeta } from "../backends/backend.ts";
import { toFloat32 } from "../formats/dtype.ts";
import { ModelFileError } from "../formats/model-file-error.ts";
import { openSafetensors } from "../formats/safetensors.ts";
import type { LlamaGraph } from "./graph.ts";

export const TIE_GAP = 1e-3;

/** Whether a greedy divergence after a stored top1–top2 gap of `gap` is a near-tie at this tolerance. */
export function isNearTie(gap: number, tolerance: number): boolean {
  return gap < Math.max(TIE_GAP, tolerance);
}

export interface RefCase {
  name: string;
  prompt_ids: number[];
  greedy_ids: number[];
  greedy_top1_top2_gap: number[];
}

export interface CaseResult {
  name: string;
  promptTokens: number;
  maxAbsDiffTop: number;
  lseAbsDiff: number;
  maxAbsDiffLast: number;
  greedyMatched: number;
  greedyTotal: number;
  /** "match", "tie" (diverged after a near-tie) or "mismatch". */
  greedy: "match" | "tie" | "mismatch";
  pass: boolean;
}

export interface RefFile {
  modelDir: string;
  cases: RefCase[];
  logitsFile: string;
}

/** Reads `<name>.json` and locates `<name>.logits.safetensors` beside it. */
export function readRefFile(path: string): RefFile {
  if (!existsSync(path)) throw new ModelFileError(`${path}: reference file not found`, path);
  let json: { model_dir?: string; cases?: RefCase[] };
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ModelFileError(`${path}: not valid JSON (${(e as Error).message})`, path);
  }
  if (!Array.isArray(json.cases)) throw new ModelFileError(`${path}: no "cases" array`, path);
  const logitsFile = path.replace(/\.json$/, ".logits.safetensors");
  return { modelDir: String(json.model_dir ?? ""), cases: json.cases, logitsFile };
}

/** Builds step metadata for `ids` of one sequence whose blocks are 0..n-1 and which has `cached` tokens in cache. */
export function contiguousStep(ids: number[], cached: number, maxBlocks: number): StepMeta {
  const T = ids.length;
  const positions = Int32Array.from({ length: T }, (_, i) => cached + i);
  const blockTables = Int32Array.from({ length: maxBlocks }, (_, i) => i);
  return {
    numTokens: T,
    tokenIds: Int32Array.from(ids),
    positions,
    slotMapping: positions.slice(),
    numSeqs: 1,
    queryStart: Int32Array.from([0, T]),
    seqLens: Int32Array.from([cached + T]),
    blockTables,
    maxBlocksPerSeq: maxBlocks,
  };
}

/** Runs one case on `graph` (whose KV blocks 0.. it may overwrite). */
export function validateCase(
  graph: LlamaGraph,
  c: RefCase,
  ref: { topIds: Int32Array; topVals: Float32Array; lse: Float32Array; last: Float32Array | null },
  tolerance: number,
): CaseResult {
  const V = graph.cfg.vocabSize;
  const { blockSize, numBlocks } = graph.opts;
  const T = c.prompt_ids.length;
  const total = T + c.greedy_ids.length;
  if (total > numBlocks * blockSize) throw new Error(`case ${c.name} needs ${total} KV slots`);
  const allRows = Int32Array.from({ length: T }, (_, i) => i);
  const logits = graph.forward(contiguousStep(c.prompt_ids, 0, numBlocks), allRows);
  const K = ref.topIds.length / T;
  let maxTop = 0;
  let maxLse = 0;
  for (let t = 0; t < T; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    for (let k = 0; k < K; k++) {
      maxTop = Math.max(maxTop, Math.abs(row[ref.topIds[t * K + k]] - ref.topVals[t * K + k]));
    }
    maxLse = Math.max(maxLse, Math.abs(logSumExp(row) - ref.lse[t]));
  }
  let maxLast = 0;
  if (ref.last) {
    const row = logits.subarray((T - 1) * V, T * V);
    for (let i = 0; i < V; i++) maxLast = Math.max(maxLast, Math.abs(row[i] - ref.last[i]));
  }
  // Greedy continuation through the KV cache, one token per step.
  let next = argmax(logits.subarray((T - 1) * V, T * V));
  let matched = 0;
  let greedy: CaseResult["greedy"] = "match";
  const lastRow = Int32Array.of(0);
  for (let i = 0; i < c.greedy_ids.length; i++) {
    if (next !== c.greedy_ids[i]) {
      greedy = isNearTie(c.greedy_top1_top2_gap[i] ?? Number.POSITIVE_INFINITY, tolerance) ? "tie" : "mismatch";
      break;
    }
    matched++;
    if (i + 1 === c.greedy_ids.length) break;
    const out = graph.forward(contiguousStep([next], T + i, numBlocks), lastRow);
    next = argmax(out);
  }
  const pass = maxTop <= tolerance && maxLse <= tolerance && greedy !== "mismatch";
  return {
    name: c.name,
    promptTokens: T,
    maxAbsDiffTop: maxTop,
    lseAbsDiff: maxLse,
    maxAbsDiffLast: maxLast,
    greedyMatched: matched,
    greedyTotal: c.greedy_ids.length,
    greedy,
    pass,
  };
}

/** Validates every case of `refs` against `graph`. */
export function validateAll(graph: LlamaGraph, refs: RefFile, tolerance: number): CaseResult[] {
  const st = openSafetensors(refs.logitsFile);
  try {
    return refs.cases.map((c) => {
      const get = (suffix: string) => toFloat32(st.read(`${c.name}.${suffix}`) as HostTensor);
      const idsT = st.read(`${c.name}.top_ids`);
      const topIds = new Int32Array(idsT.data.slice().buffer);
      return validateCase(
        graph,
        c,
        {
          topIds,
          topVals: get("top_vals"),
          lse: get("lse"),
          last: st.has(`${c.name}.last`) ? get("last") : null,
        },
        tolerance,
      );
    });
  } finally {
    st.close();
  }
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

function logSumExp(row: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return max + Math.log(sum);
}
