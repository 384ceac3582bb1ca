/** The benchmark's metrics math: percentiles as numpy computes them, TPOT / ITL / goodput as vLLM defines them. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { compareRatios } from "../../src/bench/compare.ts";
import {
  distribution,
  meetsSlo,
  parseSlo,
  percentile,
  percentileSorted,
  ratio,
  summarize,
  tpotOf,
} from "../../src/bench/metrics.ts";
import { arrivalTimes, BenchRng } from "../../src/bench/random.ts";
import type { RequestRecord, RunResult, RunSummary } from "../../src/bench/types.ts";

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps, `${a} ≉ ${b}`);

function rec(p: Partial<RequestRecord>): RequestRecord {
  return {
    item: 0,
    turn: 0,
    ok: true,
    promptLen: 10,
    outputLen: 5,
    start: 0,
    queueWait: 0,
    ttft: 100,
    latency: 500,
    itl: [],
    ...p,
  };
}

test("percentiles interpolate linearly between order statistics (numpy's default)", () => {
  // np.percentile([1, 2, 3, 4], [0, 50, 90, 99, 100]) = [1, 2.5, 3.7, 3.97, 4]
  const v = [4, 1, 3, 2];
  close(percentile(v, 0), 1);
  close(percentile(v, 50), 2.5);
  close(percentile(v, 90), 3.7);
  close(percentile(v, 99), 3.97);
  close(percentile(v, 100), 4);
  // np.percentile([15, 20, 35, 40, 50], 40) = 29
  close(percentile([15, 20, 35, 40, 50], 40), 29);
  close(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentileSorted([], 50)));
  assert.throws(() => percentile([1], 101), RangeError);
  // The input is not reordered.
  assert.deepEqual(v, [4, 1, 3, 2]);
});

test("distribution: mean, population std (numpy's), median, p90, p99, min, max; zeros when empty", () => {
  const d = distribution([2, 4, 4, 4, 5, 5, 7, 9]);
  assert.equal(d.count, 8);
  close(d.mean, 5);
  close(d.std, 2);
  close(d.median, 4.5);
  close(d.p90, 7.6); // pos 6.3 → 7 + 0.3 × 2
  close(d.p99, 8.86); // pos 6.93 → 7 + 0.93 × 2
  assert.equal(d.min, 2);
  assert.equal(d.max, 9);
  assert.deepEqual(distribution([]), { count: 0, mean: 0, std: 0, min: 0, median: 0, p90: 0, p99: 0, max: 0 });
});

test("TPOT = (E2E − TTFT) / (output tokens − 1), undefined for one token", () => {
  close(tpotOf({ latency: 1000, ttft: 100, outputLen: 10 })!, 100);
  close(tpotOf({ latency: 300, ttft: 100, outputLen: 2 })!, 200);
  assert.equal(tpotOf({ latency: 300, ttft: 100, outputLen: 1 }), null);
  assert.equal(tpotOf({ latency: 300, ttft: 300, outputLen: 0 }), null);
});

test("goodput counts requests within every SLO (bounds inclusive; a 1-token request has TPOT 0)", () => {
  const slo = { ttft: 200, tpot: 50 };
  assert.equal(meetsSlo(rec({ ttft: 200, latency: 400, outputLen: 5 }), slo), true); // tpot 50: on the bound
  assert.equal(meetsSlo(rec({ ttft: 201, latency: 400, outputLen: 5 }), slo), false);
  assert.equal(meetsSlo(rec({ ttft: 100, latency: 401, outputLen: 5 }), slo), false); // tpot 75.25
  assert.equal(meetsSlo(rec({ ttft: 100, latency: 9999, outputLen: 1 }), slo), true);
  assert.equal(meetsSlo(rec({ latency: 900 }), { e2el: 800 }), false);
  assert.equal(meetsSlo(rec({ latency: 800 }), { e2el: 800 }), true);

  const records = [
    rec({ ttft: 100, latency: 300, outputLen: 5 }), // tpot 50: good
    rec({ ttft: 300, latency: 500, outputLen: 5 }), // ttft too high
    rec({ ttft: 100, latency: 900, outputLen: 5 }), // tpot 200: too high
    rec({ ok: false, error: "HTTP 500", outputLen: 0 }),
  ];
  const s = summarize(records, 2, slo);
  assert.equal(s.completed, 3);
  assert.equal(s.failed, 1);
  assert.equal(s.goodRequests, 1);
  close(s.goodput!, 0.5);
  assert.equal(summarize(records, 2, {}).goodput, null);
});

test("summarize: throughputs over the duration, TPOT only for > 1 token, ITL pooled, failures excluded", () => {
  const records = [
    rec({ promptLen: 100, outputLen: 4, ttft: 50, latency: 200, itl: [40, 60, 50] }),
    rec({ promptLen: 50, outputLen: 1, ttft: 80, latency: 80, itl: [] }),
    rec({ promptLen: 70, outputLen: 3, ttft: 30, latency: 130, itl: [50, 50] }),
    rec({ ok: false, promptLen: 999, outputLen: 0, ttft: 1, latency: 1 }),
  ];
  const s = summarize(records, 4, {}, 3);
  assert.equal(s.totalInputTokens, 220);
  assert.equal(s.totalOutputTokens, 8);
  close(s.requestThroughput, 0.75);
  close(s.outputThroughput, 2);
  close(s.totalTokenThroughput, 57);
  assert.equal(s.maxInFlight, 3);
  assert.equal(s.ttft.count, 3);
  close(s.ttft.median, 50);
  // TPOTs: (200−50)/3 = 50 and (130−30)/2 = 50; the 1-token request has none.
  assert.equal(s.tpot.count, 2);
  close(s.tpot.mean, 50);
  assert.equal(s.itl.count, 5);
  close(s.itl.mean, 50);
  close(s.e2el.max, 200);
  // No duration: no throughput rather than Infinity.
  assert.equal(summarize(records, 0, {}).requestThroughput, 0);
});

test("parseSlo takes ttft=500,tpot=50 and vLLM's ttft:500 tpot:50", () => {
  assert.deepEqual(parseSlo("ttft=500,tpot=50"), { ttft: 500, tpot: 50 });
  assert.deepEqual(parseSlo("ttft:500 tpot:50 e2el:3000"), { ttft: 500, tpot: 50, e2el: 3000 });
  assert.deepEqual(parseSlo("e2e=1.5ms"), { e2el: 1.5 });
  assert.throws(() => parseSlo("latency=5"), /unknown SLO/);
  assert.throws(() => parseSlo("ttft=-1"), /bad SLO|must be > 0/);
  assert.throws(() => parseSlo("ttft=0"), /must be > 0/);
  assert.throws(() => parseSlo(""), /no SLO/);
});

test("ratio guards missing values and zero", () => {
  close(ratio(10, 4)!, 2.5);
  assert.equal(ratio(1, 0), null);
  assert.equal(ratio(null, 1), null);
  assert.equal(ratio(Number.NaN, 1), null);
});

test("arrival gaps: gamma(burstiness, 1/(rate·burstiness)): mean rate kept, burstiness sets the spread", () => {
  const n = 20_000;
  const stats = (burstiness: number) => {
    const t = arrivalTimes(n, 50, burstiness, new BenchRng(7));
    const gaps = t.slice(1).map((x, i) => x - t[i]);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    const sd = Math.sqrt(gaps.reduce((a, b) => a + (b - mean) ** 2, 0) / gaps.length);
    return { mean, cv: sd / mean, first: t[0] };
  };
  const poisson = stats(1);
  assert.equal(poisson.first, 0);
  assert.ok(Math.abs(poisson.mean - 0.02) < 0.001, `mean gap ${poisson.mean}`);
  assert.ok(Math.abs(poisson.cv - 1) < 0.05, `Poisson gaps have CV 1, got ${poisson.cv}`);
  const regular = stats(4);
  assert.ok(Math.abs(regular.mean - 0.02) < 0.001);
  assert.ok(Math.abs(regular.cv - 0.5) < 0.04, `shape 4 has CV 0.5, got ${regular.cv}`);
  const bursty = stats(0.25);
  assert.ok(Math.abs(bursty.mean - 0.02) < 0.0015, `bursty mean ${bursty.mean}`);
  assert.ok(Math.abs(bursty.cv - 2) < 0.2, `shape 0.25 has CV 2, got ${bursty.cv}`);
  assert.deepEqual(arrivalTimes(3, Number.POSITIVE_INFINITY, 1, new BenchRng(1)), [0, 0, 0]);
  // Same seed, same schedule.
  assert.deepEqual(arrivalTimes(50, 3, 1, new BenchRng(9)), arrivalTimes(50, 3, 1, new BenchRng(9)));
});

test("compare ratios: continuous ÷ naive throughput, naive ÷ continuous E2E, TTFT off ÷ on; none across backends", () => {
  const run = (label: string, group: string, config: Record<string, unknown>, s: Partial<RunSummary>): RunResult => ({
    label,
    group,
    config: {
      url: "x",
      dataset: "fixed",
      endpoint: "completions",
      numPrompts: 1,
      concurrency: 32,
      requestRate: null,
      burstiness: 1,
      inputLen: 1,
      outputLen: 1,
      seed: 0,
      slo: {},
      serverBackend: "native",
      ...config,
    },
    summary: { ...summarize([rec({})], 1, {}), ...s },
    requests: [],
  });
  const dist = (median: number) => ({ ...distribution([median]) });
  const runs = [
    run("naive", "schedulers", { scheduler: "naive" }, { outputThroughput: 100, e2el: dist(9000) }),
    run("static", "schedulers", { scheduler: "static", serverBackend: "reference" }, { outputThroughput: 10 }),
    run("continuous", "schedulers", { scheduler: "continuous" }, { outputThroughput: 600, e2el: dist(3000) }),
    run("on", "prefix caching", { prefixCaching: true, concurrency: 8 }, { ttft: dist(200), outputThroughput: 4 }),
    run("off", "prefix caching", { prefixCaching: false, concurrency: 8 }, { ttft: dist(900), outputThroughput: 1 }),
  ];
  const r = Object.fromEntries(compareRatios(runs).map((x) => [x.name, x]));
  close(r["throughput continuous/naive"].value!, 6);
  assert.equal(r["throughput continuous/naive"].target, 5);
  close(r["median E2E naive/continuous"].value!, 3);
  close(r["median TTFT prefix off/on"].value!, 4.5);
  assert.equal(r["median TTFT prefix off/on"].target, 3);
  close(r["throughput prefix on/off"].value!, 4);
  assert.equal(r["throughput continuous/static"].value, null);
  assert.match(r["throughput continuous/static"].detail, /not comparable: .*static ran reference/);
});
