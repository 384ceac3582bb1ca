/**
 * Per-row parameters of GPU sampling (native/cuda/sampling.cu), packed into the two arrays the addon
 * uploads in one copy. The GPU applies temperature → top-k → top-p → min-p and draws with the row's
 * uniform number u, which the caller takes from the sequence's own rng (so per-request seeds work).
 * Rows that need penalties, logit bias or min_tokens must be sampled on the host (src/sampler).
 *
 *   params (Float32Array, 4 × rows):  [ temperature₀ … | topP₀ … | minP₀ … | u₀ … ]
 *   topK   (Int32Array, rows):        [ topK₀ … ]      (0 or ≥ vocab: off)
 */

/** Temperatures below this are greedy, as src/sampler/sampler.ts GREEDY_TEMPERATURE. */
export const GPU_GREEDY_TEMPERATURE = 1e-5;

export interface GpuSamplingRow {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  /** Uniform draw in [0, 1) for this row. */
  uniform: number;
}

/** Reusable packing arrays, grown to the largest batch seen. */
export class SamplingArgs {
  params = new Float32Array(0);
  topK = new Int32Array(0);
  #rows = 0;

  get rows(): number {
    return this.#rows;
  }

  /** Packs `rows` (validated) and returns true when every row is greedy (use the argmax kernel). */
  pack(rows: readonly GpuSamplingRow[]): boolean {
    const n = rows.length;
    if (this.topK.length < n) {
      this.params = new Float32Array(4 * n);
      this.topK = new Int32Array(n);
    }
    this.#rows = n;
    let greedy = true;
    for (let i = 0; i < n; i++) {
      const r = rows[i];
      checkRow(r, i);
      this.params[i] = r.temperature;
      this.params[n + i] = r.topP;
      this.params[2 * n + i] = r.minP;
      this.params[3 * n + i] = r.uniform;
      this.topK[i] = r.topK;
      if (r.temperature >= GPU_GREEDY_TEMPERATURE) greedy = false;
    }
    return greedy;
  }
}

function checkRow(r: GpuSamplingRow, i: number): void {
  const bad = (what: string) => {
    throw new RangeError(`sampling row ${i}: ${what}`);
  };
  if (!(r.temperature >= 0) || !Number.isFinite(r.temperature)) bad(`temperature ${r.temperature} must be ≥ 0`);
  if (!Number.isInteger(r.topK) || r.topK < 0) bad(`topK ${r.topK} must be a non-negative integer`);
  if (!(r.topP > 0 && r.topP <= 1)) bad(`topP ${r.topP} must be in (0, 1]`);
  if (!(r.minP >= 0 && r.minP <= 1)) bad(`minP ${r.minP} must be in [0, 1]`);
  if (!(r.uniform >= 0 && r.uniform < 1)) bad(`uniform ${r.uniform} must be in [0, 1)`);
}
