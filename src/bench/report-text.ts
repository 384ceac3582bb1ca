/** Plain-text results for the terminal: vLLM-style blocks per run, a table across runs, and the ratios. */
import type { Distribution, Ratio, RunResult } from "./types.ts";

const W = 50;

function line(name: string, value: string): string {
  return `${name.padEnd(W - 10)}${value.padStart(10)}`;
}

export function fmt(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "-";
  return v.toFixed(digits);
}

function distLines(title: string, short: string, d: Distribution): string[] {
  return [
    `${"-".repeat(Math.floor((W - title.length - 2) / 2))} ${title} ${"-".repeat(Math.ceil((W - title.length - 2) / 2))}`,
    line(`Mean ${short} (ms):`, fmt(d.mean)),
    line(`Median ${short} (ms):`, fmt(d.median)),
    line(`P90 ${short} (ms):`, fmt(d.p90)),
    line(`P99 ${short} (ms):`, fmt(d.p99)),
  ];
}

/** The block vLLM's benchmark_serving prints, for one run. */
export function runBlock(run: RunResult): string {
  const s = run.summary;
  const c = run.config;
  const title = ` Serving Benchmark Result: ${run.label} `;
  const pad = Math.max(0, W - title.length);
  const out = [
    `${"=".repeat(Math.floor(pad / 2))}${title}${"=".repeat(Math.ceil(pad / 2))}`,
    line("Dataset:", c.dataset),
    line("Max concurrency:", c.concurrency === null ? "inf" : String(c.concurrency)),
    line("Request rate (req/s):", c.requestRate === null ? "inf" : String(c.requestRate)),
    line("Successful requests:", String(s.completed)),
    line("Failed requests:", String(s.failed)),
    line("Benchmark duration (s):", fmt(s.duration)),
    line("Total input tokens:", String(s.totalInputTokens)),
    line("Total generated tokens:", String(s.totalOutputTokens)),
    line("Request throughput (req/s):", fmt(s.requestThroughput)),
    ...(s.goodput !== null ? [line("Request goodput (req/s):", fmt(s.goodput))] : []),
    line("Output token throughput (tok/s):", fmt(s.outputThroughput)),
    line("Total token throughput (tok/s):", fmt(s.totalTokenThroughput)),
    line("Peak requests in flight:", String(s.maxInFlight)),
    ...distLines("Time to First Token", "TTFT", s.ttft),
    ...distLines("Time per Output Token (excl. 1st token)", "TPOT", s.tpot),
    ...distLines("Inter-token Latency", "ITL", s.itl),
    ...distLines("End-to-end Latency", "E2EL", s.e2el),
    "=".repeat(W),
  ];
  const errors = run.requests.filter((r) => !r.ok).map((r) => r.error ?? "failed");
  if (errors.length) {
    const counts = new Map<string, number>();
    for (const e of errors) counts.set(e, (counts.get(e) ?? 0) + 1);
    out.push("Errors:");
    for (const [e, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 5)) out.push(`  ${n} × ${e}`);
  }
  return out.join("\n");
}

/** Aligned text table: the first column (and those in `left`) left-aligned, the rest right-aligned. */
export function table(head: string[], rows: string[][], left: readonly number[] = []): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmtRow = (r: string[]) =>
    r
      .map((c, i) => (i === 0 || left.includes(i) ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join("  ")
      .trimEnd();
  return [fmtRow(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(fmtRow)].join("\n");
}

/** One row per run: the headline numbers. */
export function runsTable(runs: readonly RunResult[]): string {
  return table(
    [
      "run",
      "conc",
      "ok/fail",
      "req/s",
      "out tok/s",
      "TTFT p50",
      "TTFT p99",
      "TPOT p50",
      "ITL p50",
      "E2E p50",
      "E2E p99",
      "goodput",
    ],
    runs.map((r) => {
      const s = r.summary;
      return [
        r.label,
        r.config.concurrency === null ? "inf" : String(r.config.concurrency),
        `${s.completed}/${s.failed}`,
        fmt(s.requestThroughput),
        fmt(s.outputThroughput, 1),
        fmt(s.ttft.median, 1),
        fmt(s.ttft.p99, 1),
        fmt(s.tpot.median, 1),
        fmt(s.itl.median, 1),
        fmt(s.e2el.median, 1),
        fmt(s.e2el.p99, 1),
        s.goodput === null ? "-" : fmt(s.goodput),
      ];
    }),
  );
}

export function ratiosTable(ratios: readonly Ratio[]): string {
  return table(
    ["ratio", "value", "target", ""],
    ratios.map((r) => [
      r.name,
      r.value === null ? "-" : `${r.value.toFixed(2)}×`,
      r.target === undefined ? "" : `≥ ${r.target}×`,
      r.target === undefined || r.value === null ? r.detail : `${r.value >= r.target ? "ok" : "BELOW"}: ${r.detail}`,
    ]),
    [3],
  );
}
