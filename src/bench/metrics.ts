/**
 * The benchmark's metrics math, defined as vLLM's benchmark_serving defines it:
 * - TTFT: send → first chunk carrying generated text.
 * - TPOT (per request): (E2E latency − TTFT) / (output tokens − 1), only for requests with > 1 output token.
 * - ITL: every gap between successive text chunks, pooled over all requests.
 * - E2EL: send → end of the stream.
 * - throughputs: completed requests, output tokens, input + output tokens, each ÷ the run's duration.
 * - goodput: requests meeting every given SLO (ttft, tpot, e2el; value ≤ bound, a 1-token request counting
 *   TPOT 0) ÷ duration.
 * Percentiles interpolate linearly between order statistics (numpy's default).
 */
import type { Distribution, RequestRecord, RunSummary, Slo } from "./types.ts";

/** The p-th percentile (0–100) of `sorted` (ascending), linear interpolation; NaN when empty. */
export function percentileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${p}`);
  const pos = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function percentile(values: readonly number[], p: number): number {
  return percentileSorted(
    [...values].sort((a, b) => a - b),
    p,
  );
}

/** count, mean, population std (numpy's default), min, median, p90, p99, max; zeros when empty (as vLLM). */
export function distribution(values: readonly number[]): Distribution {
  const n = values.length;
  if (n === 0) return { count: 0, mean: 0, std: 0, min: 0, median: 0, p90: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  let sum = 0;
  for (const v of sorted) sum += v;
  const mean = sum / n;
  let sq = 0;
  for (const v of sorted) sq += (v - mean) ** 2;
  return {
    count: n,
    mean,
    std: Math.sqrt(sq / n),
    min: sorted[0],
    median: percentileSorted(sorted, 50),
    p90: percentileSorted(sorted, 90),
    p99: percentileSorted(sorted, 99),
    max: sorted[n - 1],
  };
}

/** Time per output token after the first, or null for requests of ≤ 1 output token. */
export function tpotOf(r: Pick<RequestRecord, "latency" | "ttft" | "outputLen">): number | null {
  return r.outputLen > 1 ? (r.latency - r.ttft) / (r.outputLen - 1) : null;
}

/** Whether a completed request meets every bound of `slo` (a 1-token request has TPOT 0, as in vLLM). */
export function meetsSlo(r: RequestRecord, slo: Slo): boolean {
  if (slo.ttft !== undefined && !(r.ttft <= slo.ttft)) return false;
  if (slo.tpot !== undefined && !((tpotOf(r) ?? 0) <= slo.tpot)) return false;
  if (slo.e2el !== undefined && !(r.latency <= slo.e2el)) return false;
  return true;
}

export function hasSlo(slo: Slo): boolean {
  return slo.ttft !== undefined || slo.tpot !== undefined || slo.e2el !== undefined;
}

/**
 * Parses SLOs: `ttft=500,tpot=50` (ms). Also takes vLLM's `ttft:500 tpot:50` form and `e2e`/`e2el`.
 */
export function parseSlo(text: string): Slo {
  const slo: Slo = {};
  const parts = text
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new Error(`no SLO in "${text}" (expected e.g. ttft=500,tpot=50)`);
  for (const part of parts) {
    const m = /^([a-z0-9_]+)\s*[=:]\s*([0-9]*\.?[0-9]+)(ms)?$/i.exec(part);
    if (!m) throw new Error(`bad SLO "${part}" (expected name=milliseconds, e.g. ttft=500)`);
    const name = m[1].toLowerCase();
    const value = Number(m[2]);
    if (!(value > 0)) throw new Error(`SLO ${name} must be > 0 ms, got ${m[2]}`);
    if (name === "ttft") slo.ttft = value;
    else if (name === "tpot") slo.tpot = value;
    else if (name === "e2e" || name === "e2el") slo.e2el = value;
    else throw new Error(`unknown SLO "${name}" (use ttft, tpot or e2el)`);
  }
  return slo;
}

/**
 * Summarizes a run. `duration` is seconds from the first send to the last answer; failed requests count
 * in `failed` only (as vLLM drops them from every metric).
 */
export function summarize(records: readonly RequestRecord[], duration: number, slo: Slo, maxInFlight = 0): RunSummary {
  const done = records.filter((r) => r.ok);
  const ttfts = done.map((r) => r.ttft);
  const tpots: number[] = [];
  const itls: number[] = [];
  const e2els = done.map((r) => r.latency);
  let totalIn = 0;
  let totalOut = 0;
  for (const r of done) {
    totalIn += r.promptLen;
    totalOut += r.outputLen;
    const t = tpotOf(r);
    if (t !== null) tpots.push(t);
    for (const g of r.itl) itls.push(g);
  }
  const per = (x: number) => (duration > 0 ? x / duration : 0);
  const good = hasSlo(slo) ? done.filter((r) => meetsSlo(r, slo)).length : null;
  return {
    completed: done.length,
    failed: records.length - done.length,
    duration,
    totalInputTokens: totalIn,
    totalOutputTokens: totalOut,
    requestThroughput: per(done.length),
    outputThroughput: per(totalOut),
    totalTokenThroughput: per(totalIn + totalOut),
    goodput: good === null ? null : per(good),
    goodRequests: good,
    maxInFlight,
    ttft: distribution(ttfts),
    tpot: distribution(tpots),
    itl: distribution(itls),
    e2el: distribution(e2els),
  };
}

/** `a ÷ b`, or null when either is missing or b is 0. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !(b > 0)) return null;
  return a / b;
}
