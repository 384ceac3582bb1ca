/**
 * A tiny SVG plotter for the HTML report (no library, no CDN): line/step plots with linear or log x axes,
 * grouped bar charts, nice ticks, axis labels and a legend. Output is a self-contained <svg> string.
 * Elements carry classes (series, axis-label, tick, legend) so tests can check what was drawn.
 */

export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** About `count` round tick values (1, 2, 2.5, 5 × 10^k steps) whose range covers [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (max === min) {
    const d = Math.abs(max) || 1;
    min -= d / 2;
    max += d / 2;
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  // From the last step at or below min to the first at or above max, so the ticks cover the data.
  const first = Math.floor(min / step + 1e-9) * step;
  const ticks: number[] = [];
  for (let v = first; ticks.length < 50; v += step) {
    ticks.push(Number(v.toPrecision(12)));
    if (v >= max - step * 1e-9) break;
  }
  return ticks;
}

/** Short tick label: 1500 → 1.5k, 0.25 → 0.25. */
export function tickLabel(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  if (a === 0) return "0";
  return String(Number(v.toPrecision(3)));
}

export interface Series {
  name: string;
  points: [number, number][];
  color?: string;
  dashed?: boolean;
  /** Draw a dot at every point (for short series such as sweeps). */
  markers?: boolean;
}

export interface LinePlotOptions {
  /** data-kind of the <svg> (e.g. "cdf-ttft"). */
  kind: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Log-2 x axis with ticks at `xTicks` (concurrency sweeps). */
  xLog?: boolean;
  xTicks?: number[];
  yMin?: number;
  yMax?: number;
  xMin?: number;
  width?: number;
  height?: number;
}

const M = { left: 64, right: 18, top: 52, bottom: 50 };

function frame(kind: string, w: number, h: number, title: string, body: string[]): string {
  return [
    `<svg class="plot" data-kind="${esc(kind)}" xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(title)}">`,
    `<rect class="bg" x="0" y="0" width="${w}" height="${h}" fill="#fff"/>`,
    `<text class="plot-title" x="${w / 2}" y="20" text-anchor="middle" font-size="15" font-weight="600">${esc(title)}</text>`,
    ...body,
    "</svg>",
  ].join("\n");
}

function legend(names: { name: string; color: string; dashed?: boolean }[], w: number): string[] {
  const out: string[] = ['<g class="legend">'];
  let x = M.left;
  let y = 38;
  for (const s of names) {
    const width = 28 + s.name.length * 7 + 14;
    if (x + width > w - M.right && x > M.left) {
      x = M.left;
      y += 14;
    }
    out.push(
      `<line x1="${x}" y1="${y - 4}" x2="${x + 20}" y2="${y - 4}" stroke="${s.color}" stroke-width="3"${s.dashed ? ' stroke-dasharray="6 3"' : ""}/>`,
      `<text class="legend-label" x="${x + 25}" y="${y}" font-size="12">${esc(s.name)}</text>`,
    );
    x += width;
  }
  out.push("</g>");
  return out;
}

function axes(
  w: number,
  h: number,
  xTicks: { v: number; px: number }[],
  yTicks: { v: number; px: number }[],
  xLabel: string,
  yLabel: string,
): string[] {
  const x0 = M.left;
  const x1 = w - M.right;
  const y0 = h - M.bottom;
  const y1 = M.top;
  const out: string[] = ['<g class="grid" stroke="#e5e5e5" stroke-width="1">'];
  for (const t of yTicks) out.push(`<line x1="${x0}" y1="${t.px.toFixed(1)}" x2="${x1}" y2="${t.px.toFixed(1)}"/>`);
  out.push("</g>", '<g class="axis x-axis" font-size="11" fill="#333">');
  out.push(`<line x1="${x0}" y1="${y0}" x2="${x1}" y2="${y0}" stroke="#333"/>`);
  for (const t of xTicks) {
    out.push(
      `<line x1="${t.px.toFixed(1)}" y1="${y0}" x2="${t.px.toFixed(1)}" y2="${y0 + 5}" stroke="#333"/>`,
      `<text class="tick" x="${t.px.toFixed(1)}" y="${y0 + 18}" text-anchor="middle">${esc(tickLabel(t.v))}</text>`,
    );
  }
  out.push("</g>", '<g class="axis y-axis" font-size="11" fill="#333">');
  out.push(`<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y1}" stroke="#333"/>`);
  for (const t of yTicks) {
    out.push(
      `<line x1="${x0 - 5}" y1="${t.px.toFixed(1)}" x2="${x0}" y2="${t.px.toFixed(1)}" stroke="#333"/>`,
      `<text class="tick" x="${x0 - 8}" y="${(t.px + 4).toFixed(1)}" text-anchor="end">${esc(tickLabel(t.v))}</text>`,
    );
  }
  out.push(
    "</g>",
    `<text class="axis-label x-label" x="${(x0 + x1) / 2}" y="${h - 10}" text-anchor="middle" font-size="13">${esc(xLabel)}</text>`,
    `<text class="axis-label y-label" transform="translate(16 ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle" font-size="13">${esc(yLabel)}</text>`,
  );
  return out;
}

export function linePlot(o: LinePlotOptions): string {
  const w = o.width ?? 640;
  const h = o.height ?? 360;
  const series = o.series.map((s, i) => ({ ...s, color: s.color ?? PALETTE[i % PALETTE.length] }));
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (all.length === 0) {
    return frame(o.kind, w, h, o.title, [
      `<text class="empty" x="${w / 2}" y="${h / 2}" text-anchor="middle" fill="#888">no data</text>`,
    ]);
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const tx = (v: number) => (o.xLog ? Math.log2(Math.max(v, 1e-9)) : v);
  let xMin = o.xMin ?? Math.min(...xs);
  let xMax = Math.max(...xs);
  let yMin = o.yMin ?? Math.min(0, ...ys);
  let yMax = o.yMax ?? Math.max(...ys);
  let xTickVals: number[];
  if (o.xLog) {
    xTickVals = o.xTicks ?? [...new Set(xs)].sort((a, b) => a - b);
  } else {
    xTickVals = niceTicks(xMin, xMax, 6);
    xMin = Math.min(xMin, xTickVals[0]);
    xMax = Math.max(xMax, xTickVals[xTickVals.length - 1]);
  }
  if (yMax === yMin) yMax = yMin + 1;
  const yTickVals = niceTicks(yMin, yMax, 5);
  if (o.yMax === undefined) yMax = Math.max(yMax, yTickVals[yTickVals.length - 1]);
  if (o.yMin === undefined) yMin = Math.min(yMin, yTickVals[0]);
  let lo = tx(xMin);
  let hi = tx(xMax);
  if (hi === lo) {
    lo -= 1;
    hi += 1;
  }
  const px = (v: number) => M.left + ((tx(v) - lo) / (hi - lo)) * (w - M.left - M.right);
  const py = (v: number) => h - M.bottom - ((v - yMin) / (yMax - yMin)) * (h - M.top - M.bottom);
  const body: string[] = [
    ...legend(series, w),
    ...axes(
      w,
      h,
      xTickVals.filter((v) => v >= xMin && v <= xMax).map((v) => ({ v, px: px(v) })),
      yTickVals.filter((v) => v >= yMin && v <= yMax).map((v) => ({ v, px: py(v) })),
      o.xLabel,
      o.yLabel,
    ),
  ];
  for (const s of series) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (pts.length === 0) continue;
    const d = pts.map(([x, y], i) => `${i === 0 ? "M" : "L"}${px(x).toFixed(1)} ${py(y).toFixed(1)}`).join(" ");
    body.push(
      `<path class="series" data-series="${esc(s.name)}" data-points="${pts.length}" d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 3"' : ""}><title>${esc(s.name)}</title></path>`,
    );
    if (s.markers) {
      body.push(`<g class="markers" fill="${s.color}">`);
      for (const [x, y] of pts) {
        body.push(
          `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3.5"><title>${esc(`${s.name}: ${tickLabel(x)} → ${tickLabel(y)}`)}</title></circle>`,
        );
      }
      body.push("</g>");
    }
  }
  return frame(o.kind, w, h, o.title, body);
}

/** Points of the empirical CDF of `values` as a step line, at most ~`maxPoints` of them. */
export function cdfPoints(values: readonly number[], maxPoints = 1200): [number, number][] {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return [];
  const pts: [number, number][] = [[sorted[0], 0]];
  const stride = Math.max(1, Math.ceil((2 * n) / maxPoints));
  for (let i = 0; i < n; i += stride) {
    const j = Math.min(n - 1, i + stride - 1);
    pts.push([sorted[i], i / n], [sorted[j], (j + 1) / n]);
  }
  const last = pts[pts.length - 1];
  if (last[1] < 1) pts.push([sorted[n - 1], 1]);
  return pts;
}

export interface BarPlotOptions {
  kind: string;
  title: string;
  yLabel: string;
  categories: string[];
  series: { name: string; values: (number | null)[]; color?: string }[];
  /** With one series: a color per category (to match the runs' colors in other plots). */
  categoryColors?: string[];
  width?: number;
  height?: number;
}

export function barPlot(o: BarPlotOptions): string {
  const w = o.width ?? 640;
  const h = o.height ?? 360;
  const series = o.series.map((s, i) => ({ ...s, color: s.color ?? PALETTE[i % PALETTE.length] }));
  const vals = series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  if (vals.length === 0 || o.categories.length === 0) {
    return frame(o.kind, w, h, o.title, [
      `<text class="empty" x="${w / 2}" y="${h / 2}" text-anchor="middle" fill="#888">no data</text>`,
    ]);
  }
  const yTickVals = niceTicks(0, Math.max(...vals), 5);
  const yMax = Math.max(Math.max(...vals), yTickVals[yTickVals.length - 1]) || 1;
  const py = (v: number) => h - M.bottom - (v / yMax) * (h - M.top - M.bottom);
  const slot = (w - M.left - M.right) / o.categories.length;
  const barW = Math.min(60, (slot * 0.8) / series.length);
  const body: string[] = [
    ...(series.length > 1 ? legend(series, w) : []),
    ...axes(
      w,
      h,
      [],
      yTickVals.map((v) => ({ v, px: py(v) })),
      "",
      o.yLabel,
    ),
  ];
  o.categories.forEach((cat, ci) => {
    const cx = M.left + slot * (ci + 0.5);
    body.push(
      `<text class="tick category" x="${cx.toFixed(1)}" y="${h - M.bottom + 18}" text-anchor="middle" font-size="12">${esc(cat)}</text>`,
    );
    series.forEach((s, si) => {
      const v = s.values[ci];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const x = cx - (barW * series.length) / 2 + si * barW;
      const fill = series.length === 1 && o.categoryColors?.[ci] ? o.categoryColors[ci] : s.color;
      const y = py(v);
      body.push(
        `<rect class="bar" data-series="${esc(s.name)}" data-category="${esc(cat)}" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(h - M.bottom - y).toFixed(1)}" fill="${fill}"><title>${esc(`${s.name} ${cat}: ${tickLabel(v)}`)}</title></rect>`,
        `<text class="bar-value" x="${(x + barW / 2 - 1).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle" font-size="11">${esc(tickLabel(v))}</text>`,
      );
    });
  });
  return frame(o.kind, w, h, o.title, body);
}
