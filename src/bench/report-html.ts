/**
 * The HTML report: one self-contained file (inline CSS and SVG, no script, no CDN) that opens offline.
 * Per group of runs: latency CDFs (TTFT, TPOT, ITL, E2E) with one line per run, and, when the runs differ
 * in concurrency, throughput and latency against concurrency (one line per series); runs at one
 * concurrency are compared as bars instead. The report's JSON rides along in a <script type=
 * "application/json"> block so the file alone holds the data.
 */
import { tpotOf } from "./metrics.ts";
import { fmt } from "./report-text.ts";
import { barPlot, cdfPoints, esc, linePlot, PALETTE } from "./svg.ts";
import type { BenchReport, Distribution, RunResult } from "./types.ts";

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1340px;color:#222;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.meta{color:#666;font-size:13px}.meta code{background:#f4f4f4;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{padding:4px 9px;border-bottom:1px solid #eee;text-align:right}
th{background:#fafafa;font-weight:600}td:first-child,th:first-child{text-align:left}
table.ratios td:last-child,table.ratios th:last-child{text-align:left;color:#555}
table.summary td:nth-child(-n+3),table.summary th:nth-child(-n+3){text-align:left}
.ok{color:#1a7f37;font-weight:600}.below{color:#cf222e;font-weight:600}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(620px,1fr));gap:14px}
figure{margin:0;border:1px solid #e5e5e5;border-radius:6px;padding:6px;background:#fff}
svg{max-width:100%;height:auto;display:block}
details{margin:6px 0;font-size:13px}summary{cursor:pointer}
`;

function distRow(name: string, d: Distribution): string {
  return `<tr><td>${esc(name)}</td><td>${d.count}</td><td>${fmt(d.mean)}</td><td>${fmt(d.std)}</td><td>${fmt(d.min)}</td><td>${fmt(d.median)}</td><td>${fmt(d.p90)}</td><td>${fmt(d.p99)}</td><td>${fmt(d.max)}</td></tr>`;
}

function summaryTable(runs: readonly RunResult[]): string {
  const head = [
    "run",
    "group",
    "dataset",
    "concurrency",
    "rate",
    "ok / failed",
    "duration s",
    "req/s",
    "output tok/s",
    "total tok/s",
    "goodput req/s",
    "TTFT p50 ms",
    "TTFT p99 ms",
    "TPOT p50 ms",
    "ITL p50 ms",
    "E2E p50 ms",
    "E2E p99 ms",
  ];
  const rows = runs.map((r) => {
    const s = r.summary;
    const c = r.config;
    const cells = [
      r.label,
      r.group,
      c.dataset,
      c.concurrency === null ? "∞" : String(c.concurrency),
      c.requestRate === null ? "∞" : String(c.requestRate),
      `${s.completed} / ${s.failed}`,
      fmt(s.duration),
      fmt(s.requestThroughput),
      fmt(s.outputThroughput, 1),
      fmt(s.totalTokenThroughput, 1),
      s.goodput === null ? "-" : fmt(s.goodput),
      fmt(s.ttft.median, 1),
      fmt(s.ttft.p99, 1),
      fmt(s.tpot.median, 1),
      fmt(s.itl.median, 1),
      fmt(s.e2el.median, 1),
      fmt(s.e2el.p99, 1),
    ];
    return `<tr>${cells.map((x) => `<td>${esc(x)}</td>`).join("")}</tr>`;
  });
  return `<table class="summary"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function ratiosTable(report: BenchReport): string {
  if (report.ratios.length === 0) return "";
  const rows = report.ratios.map((r) => {
    const value = r.value === null ? "-" : `${r.value.toFixed(2)}×`;
    const verdict =
      r.target === undefined || r.value === null
        ? ""
        : r.value >= r.target
          ? `<span class="ok">≥ ${r.target}× ✓</span>`
          : `<span class="below">below ${r.target}×</span>`;
    return `<tr><td>${esc(r.name)}</td><td>${esc(value)}</td><td>${verdict}</td><td>${esc(r.detail)}</td></tr>`;
  });
  return `<h2>Ratios</h2><table class="ratios"><thead><tr><th>ratio</th><th>value</th><th>target</th><th>definition</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function cdfFigures(runs: readonly RunResult[], group: string): string {
  const colorOf = (i: number) => PALETTE[i % PALETTE.length];
  const metrics: { key: string; title: string; values: (r: RunResult) => number[] }[] = [
    { key: "ttft", title: "Time to first token", values: (r) => r.requests.filter((q) => q.ok).map((q) => q.ttft) },
    {
      key: "tpot",
      title: "Time per output token (excl. 1st)",
      values: (r) =>
        r.requests
          .filter((q) => q.ok)
          .map((q) => tpotOf(q))
          .filter((v): v is number => v !== null),
    },
    { key: "itl", title: "Inter-token latency", values: (r) => r.requests.filter((q) => q.ok).flatMap((q) => q.itl) },
    { key: "e2el", title: "End-to-end latency", values: (r) => r.requests.filter((q) => q.ok).map((q) => q.latency) },
  ];
  return metrics
    .map((m) => {
      const svg = linePlot({
        kind: `cdf-${m.key}`,
        title: `${m.title} — CDF (${group})`,
        xLabel: `${m.title} (ms)`,
        yLabel: "fraction of requests ≤ x",
        yMin: 0,
        yMax: 1,
        xMin: 0,
        series: runs.map((r, i) => ({ name: r.label, color: colorOf(i), points: cdfPoints(m.values(r)) })),
      });
      return `<figure data-metric="${m.key}">${svg}</figure>`;
    })
    .join("\n");
}

interface Metric {
  key: string;
  title: string;
  unit: string;
  value: (r: RunResult) => number | null;
}

const THROUGHPUT: Metric[] = [
  {
    key: "output-throughput",
    title: "Output token throughput",
    unit: "tokens/s",
    value: (r) => r.summary.outputThroughput,
  },
  {
    key: "request-throughput",
    title: "Request throughput",
    unit: "requests/s",
    value: (r) => r.summary.requestThroughput,
  },
];
const LATENCY: Metric[] = [
  { key: "e2el-median", title: "Median end-to-end latency", unit: "ms", value: (r) => r.summary.e2el.median },
  { key: "e2el-p99", title: "P99 end-to-end latency", unit: "ms", value: (r) => r.summary.e2el.p99 },
  { key: "ttft-median", title: "Median time to first token", unit: "ms", value: (r) => r.summary.ttft.median },
  { key: "tpot-median", title: "Median time per output token", unit: "ms", value: (r) => r.summary.tpot.median },
];

function concurrencyFigures(runs: readonly RunResult[], group: string): string {
  const concs = [...new Set(runs.map((r) => r.config.concurrency))];
  const seriesOf = (r: RunResult) => r.series ?? r.group;
  const seriesNames = [...new Set(runs.map(seriesOf))];
  const swept = concs.length > 1 && concs.every((c) => c !== null);
  const figs: string[] = [];
  if (swept) {
    // Lines against concurrency, one per series.
    const ticks = (concs as number[]).sort((a, b) => a - b);
    const logX = ticks[ticks.length - 1] / ticks[0] >= 8;
    for (const m of [...THROUGHPUT, ...LATENCY]) {
      const svg = linePlot({
        kind: `vs-concurrency-${m.key}`,
        title: `${m.title} vs concurrency (${group})`,
        xLabel: "concurrency (requests in flight)",
        yLabel: `${m.title.replace(/^(Median|P99) /, "")} (${m.unit})`,
        xLog: logX,
        xTicks: logX ? ticks : undefined,
        yMin: 0,
        series: seriesNames.map((name) => ({
          name,
          markers: true,
          points: runs
            .filter((r) => seriesOf(r) === name)
            .map((r): [number, number] => [r.config.concurrency as number, m.value(r) ?? Number.NaN])
            .sort((a, b) => a[0] - b[0]),
        })),
      });
      figs.push(`<figure data-metric="${m.key}">${svg}</figure>`);
    }
  } else if (runs.length > 1) {
    // One concurrency: bars per run.
    const c = concs[0];
    const at = c === null ? "unbounded concurrency" : `concurrency ${c}`;
    for (const m of [...THROUGHPUT, ...LATENCY]) {
      const svg = barPlot({
        kind: `bars-${m.key}`,
        title: `${m.title} at ${at} (${group})`,
        yLabel: `${m.title.replace(/^(Median|P99) /, "")} (${m.unit})`,
        categories: runs.map((r) => r.label),
        series: [{ name: m.title, values: runs.map((r) => m.value(r)) }],
        categoryColors: runs.map((_, i) => PALETTE[i % PALETTE.length]),
      });
      figs.push(`<figure data-metric="${m.key}">${svg}</figure>`);
    }
  }
  return figs.join("\n");
}

function runDetails(r: RunResult): string {
  const s = r.summary;
  const config = Object.entries(r.config)
    .map(
      ([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(typeof v === "object" ? JSON.stringify(v) : String(v))}</td></tr>`,
    )
    .join("");
  const notes = r.serverNotes
    ? Object.entries(r.serverNotes)
        .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(String(v))}</td></tr>`)
        .join("")
    : "";
  return `<details><summary>${esc(r.label)}: ${s.completed} ok, ${s.failed} failed, ${fmt(s.outputThroughput, 1)} output tok/s</summary>
<table><thead><tr><th>metric (ms)</th><th>n</th><th>mean</th><th>std</th><th>min</th><th>median</th><th>p90</th><th>p99</th><th>max</th></tr></thead><tbody>
${distRow("TTFT", s.ttft)}${distRow("TPOT", s.tpot)}${distRow("ITL", s.itl)}${distRow("E2E latency", s.e2el)}
</tbody></table>
<table><thead><tr><th>setting</th><th>value</th></tr></thead><tbody>${config}</tbody></table>
${notes ? `<table><thead><tr><th>server counter (Δ over the run)</th><th>value</th></tr></thead><tbody>${notes}</tbody></table>` : ""}
</details>`;
}

export function renderHtml(report: BenchReport): string {
  const groups = [...new Set(report.runs.map((r) => r.group))];
  const sections = groups.map((g) => {
    const runs = report.runs.filter((r) => r.group === g);
    const vs = concurrencyFigures(runs, g);
    return `<section class="group" data-group="${esc(g)}">
<h2>${esc(g)}</h2>
<h3>Latency distributions</h3>
<div class="plots cdfs">${cdfFigures(runs, g)}</div>
${vs ? `<h3>Throughput and latency${runs.some((r) => r.config.concurrency !== runs[0].config.concurrency) ? " against concurrency" : ""}</h3><div class="plots sweep">${vs}</div>` : ""}
<h3>Runs</h3>
${runs.map(runDetails).join("\n")}
</section>`;
  });
  const data = JSON.stringify(report).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Loom benchmark — ${esc(report.kind)} — ${esc(report.createdAt)}</title>
<style>${CSS}</style></head>
<body>
<h1>Loom serving benchmark (${esc(report.kind)})</h1>
<p class="meta">${esc(report.createdAt)} · ${esc(report.host.platform)}, ${report.host.cpus} CPUs, Node ${esc(report.host.node)}<br><code>${esc(report.command)}</code></p>
${ratiosTable(report)}
<h2>Summary</h2>
${summaryTable(report.runs)}
<p class="meta">TTFT: send → first token; TPOT: (E2E − TTFT) ÷ (output tokens − 1); ITL: gaps between streamed chunks; E2E: send → end of stream (vLLM's definitions). Latencies in ms.</p>
${sections.join("\n")}
<script type="application/json" id="bench-data">${data}</script>
</body></html>
`;
}
