/**
 * How much a quantized model departs from its f32 self: on every prompt position of a refs file, the
 * full next-token distributions of the two graphs are compared — top-1 agreement and KL(p_f32 ‖ p_quant)
 * over the whole vocabulary (the refs files hold only top-32 logits, so the f32 run on the same backend
 * is the reference; `loom validate --dtype f32` ties that run to transformers).
 */
import type { LlamaGraph } from "./graph.ts";
import { contiguousStep, type RefCase } from "./validate.ts";

export interface QuantCaseQuality {
  name: string;
  positions: number;
  top1Agree: number;
  meanKl: number;
  maxKl: number;
}

export interface QuantQuality {
  cases: QuantCaseQuality[];
  positions: number;
  /** Fraction of positions whose argmax is the f32 argmax. */
  top1Agreement: number;
  /** Mean over positions of KL(p_f32 ‖ p_quant), in nats. */
  meanKl: number;
  maxKl: number;
}

/** Compares `quant` with `f32` (same model, same KV geometry) on the prompts of `cases`. */
export function quantQuality(f32: LlamaGraph, quant: LlamaGraph, cases: RefCase[]): QuantQuality {
  const V = f32.cfg.vocabSize;
  const out: QuantCaseQuality[] = [];
  for (const c of cases) {
    const T = c.prompt_ids.length;
    const rows = Int32Array.from({ length: T }, (_, i) => i);
    const step = contiguousStep(c.prompt_ids, 0, f32.opts.numBlocks);
    // forward() returns a view the next call may reuse: copy the f32 logits first
    const ref = f32.forward(step, rows).slice();
    const q = quant.forward(step, rows);
    let agree = 0;
    let klSum = 0;
    let klMax = 0;
    for (let t = 0; t < T; t++) {
      const a = ref.subarray(t * V, (t + 1) * V);
      const b = q.subarray(t * V, (t + 1) * V);
      if (argmax(a) === argmax(b)) agree++;
      const kl = klDivergence(a, b);
      klSum += kl;
      klMax = Math.max(klMax, kl);
    }
    out.push({ name: c.name, positions: T, top1Agree: agree, meanKl: klSum / T, maxKl: klMax });
  }
  const positions = out.reduce((s, c) => s + c.positions, 0);
  return {
    cases: out,
    positions,
    top1Agreement: out.reduce((s, c) => s + c.top1Agree, 0) / positions,
    meanKl: out.reduce((s, c) => s + c.meanKl * c.positions, 0) / positions,
    maxKl: Math.max(...out.map((c) => c.maxKl)),
  };
}

/** KL(softmax(p) ‖ softmax(q)) for two logit rows, in nats (float64 throughout). */
export function klDivergence(p: Float32Array, q: Float32Array): number {
  const lp = logSoftmax(p);
  const lq = logSoftmax(q);
  let kl = 0;
  for (let i = 0; i < p.length; i++) if (lp[i] > -700) kl += Math.exp(lp[i]) * (lp[i] - lq[i]);
  return Math.max(0, kl);
}

function logSoftmax(row: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - lse;
  return out;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}
