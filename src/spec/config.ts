/**
 * Speculative decoding settings, resolved from the engine flags (named as vLLM names them):
 *
 *   --speculative-model DIR                 draft model (implies --speculative-method draft)
 *   --speculative-method draft|ngram        ngram = prompt lookup, no second model
 *   --num-speculative-tokens K              draft tokens per step (default 4 when a method is set)
 *   --ngram-prompt-lookup-min N / -max N    n-gram lengths tried, longest first (defaults 1 and 4)
 *   --speculative-disable-by-batch-size B   no speculation in steps with more than B running sequences
 */

export type SpecMethod = "draft" | "ngram";

export interface SpecConfig {
  method: SpecMethod;
  /** Draft model folder (method "draft"). */
  draftModel: string | null;
  /** Most draft tokens verified per sequence per step (k). */
  numSpeculativeTokens: number;
  ngramMin: number;
  ngramMax: number;
  /** Steps with more running sequences than this run without speculation; 0 = never disable. */
  disableByBatchSize: number;
}

/** The speculative-decoding fields of EngineOptions (all optional: absent = speculation off). */
export interface SpecOptions {
  speculativeModel?: string;
  speculativeMethod?: SpecMethod;
  numSpeculativeTokens?: number;
  ngramPromptLookupMin?: number;
  ngramPromptLookupMax?: number;
  speculativeDisableByBatchSize?: number;
}

/**
 * k when not given: the best of k = 2..4 for the bundled draft on the cpu backend (bench:spec: k=2
 * 0.98–1.22×, k=3 0.85–0.91×, k=4 0.68–0.73× at batch 1; each verified row costs more than the 45%
 * acceptance of a 1.3 M-parameter draft gives back).
 */
export const DEFAULT_NUM_SPECULATIVE_TOKENS = 2;
export const DEFAULT_NGRAM_MIN = 1;
export const DEFAULT_NGRAM_MAX = 4;
/**
 * Measured with scripts/bench-spec.ts (tiny-llama + tiny-llama-draft, native cpu backend, k = 2..4): a
 * verification step of several rows per sequence costs more than the decode steps it saves from about
 * 2–4 concurrent sequences on (batch 8: 0.6–0.9× the plain throughput, 16: ~0.6×), so steps with more
 * than 4 running sequences run without speculation.
 */
export const DEFAULT_SPEC_DISABLE_BY_BATCH_SIZE = 4;

/**
 * Validates the flags and fills in defaults. Returns null when speculation is off (no method, no draft
 * model). Throws an Error naming the flag on a contradiction or a bad value.
 */
export function resolveSpecConfig(o: SpecOptions): SpecConfig | null {
  const method: SpecMethod | null = o.speculativeMethod ?? (o.speculativeModel ? "draft" : null);
  if (method === null) {
    if (o.numSpeculativeTokens !== undefined && o.numSpeculativeTokens > 0) {
      throw new Error("--num-speculative-tokens needs --speculative-model DIR or --speculative-method ngram");
    }
    return null;
  }
  if (method !== "draft" && method !== "ngram") {
    throw new Error(`--speculative-method must be one of draft, ngram, got "${String(method)}"`);
  }
  if (method === "draft" && !o.speculativeModel) {
    throw new Error("--speculative-method draft needs --speculative-model DIR");
  }
  if (method === "ngram" && o.speculativeModel) {
    throw new Error("--speculative-model is for --speculative-method draft, not ngram");
  }
  const k = o.numSpeculativeTokens ?? DEFAULT_NUM_SPECULATIVE_TOKENS;
  const ngramMin = o.ngramPromptLookupMin ?? DEFAULT_NGRAM_MIN;
  const ngramMax = o.ngramPromptLookupMax ?? Math.max(DEFAULT_NGRAM_MAX, ngramMin);
  const disable = o.speculativeDisableByBatchSize ?? DEFAULT_SPEC_DISABLE_BY_BATCH_SIZE;
  const positive = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}, got ${v}`);
  };
  positive("--num-speculative-tokens", k, 1);
  positive("--ngram-prompt-lookup-min", ngramMin, 1);
  positive("--ngram-prompt-lookup-max", ngramMax, 1);
  positive("--speculative-disable-by-batch-size", disable, 0);
  if (ngramMax < ngramMin) {
    throw new Error(`--ngram-prompt-lookup-max (${ngramMax}) is below --ngram-prompt-lookup-min (${ngramMin})`);
  }
  return {
    method,
    draftModel: method === "draft" ? (o.speculativeModel ?? null) : null,
    numSpeculativeTokens: k,
    ngramMin,
    ngramMax,
    disableByBatchSize: disable,
  };
}

/** One line for logs and EngineInfo, e.g. "draft tiny-llama-draft, k=4, off above 4 seqs". */
export function describeSpec(c: SpecConfig, draftName?: string): string {
  const what = c.method === "draft" ? `draft ${draftName ?? c.draftModel}` : `ngram ${c.ngramMin}..${c.ngramMax}`;
  const off = c.disableByBatchSize > 0 ? `, off above ${c.disableByBatchSize} seqs` : "";
  return `${what}, k=${c.numSpeculativeTokens}${off}`;
}
