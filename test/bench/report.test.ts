/**
 * The HTML report: rendered from a real run against the fake server, checked as text (self-contained: no
 * external resource) and in headless Chromium (the SVG plots are drawn with many points, axes labelled),
 * with a screenshot saved to a temp folder. The Chromium part skips only when /usr/bin/chromium is absent.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { compareRatios } from "../../src/bench/compare.ts";
import { makeReport, writeReport } from "../../src/bench/report.ts";
import { renderHtml } from "../../src/bench/report-html.ts";
import { probeServer, runBenchmark } from "../../src/bench/run.ts";
import type { BenchReport, RunResult } from "../../src/bench/types.ts";
import { type FakeServer, startFakeServer } from "./fake-server.ts";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** The part of playwright-core's API this test uses (typed here so type-checking needs no install). */
interface PwPage {
  on(event: "request", fn: (r: { url(): string }) => void): void;
  on(event: "pageerror", fn: (e: Error) => void): void;
  on(event: "console", fn: (m: { type(): string; text(): string }) => void): void;
  goto(url: string, o?: { waitUntil?: "load" }): Promise<unknown>;
  evaluate<T>(fn: () => T): Promise<T>;
  locator(selector: string): { count(): Promise<number> };
  screenshot(o: { path: string; fullPage?: boolean }): Promise<unknown>;
  close(): Promise<void>;
}
interface PwBrowser {
  newPage(o?: { viewport?: { width: number; height: number } }): Promise<PwPage>;
  close(): Promise<void>;
}
interface Playwright {
  chromium: { launch(o: { executablePath: string; args: string[]; headless: boolean }): Promise<PwBrowser> };
}

let fake: FakeServer;
let sweep: BenchReport;
let compare: BenchReport;
/** Where the screenshots go: $LOOM_BENCH_SCREENSHOT_DIR (e.g. to keep them as CI artifacts) or a temp folder. */
const outDir = process.env.LOOM_BENCH_SCREENSHOT_DIR || mkdtempSync(join(tmpdir(), "loom-bench-report-"));
mkdirSync(outDir, { recursive: true });

async function oneRun(label: string, group: string, concurrency: number, extra: Partial<RunResult> = {}) {
  const setup = await probeServer({ baseUrl: fake.url });
  const run = await runBenchmark(setup, {
    label,
    group,
    dataset: "random",
    data: {
      numPrompts: 24,
      inputLen: 32,
      outputLen: 12,
      rangeRatio: 0.5,
      numGroups: 1,
      groupSize: 1,
      prefixLen: 1,
      numTurns: 1,
      endpoint: "completions",
      ignoreEos: true,
    },
    concurrency,
    requestRate: Number.POSITIVE_INFINITY,
    burstiness: 1,
    seed: concurrency,
    slo: { ttft: 40 },
    warmup: 0,
    requestTimeoutMs: 10_000,
    runTimeoutMs: 30_000,
    progress: false,
  });
  return Object.assign(run, extra);
}

before(async () => {
  fake = await startFakeServer({ ttftMs: 8, itlMs: 2 });
  const runs: RunResult[] = [];
  for (const c of [1, 4, 16]) runs.push(await oneRun(`random c=${c}`, "sweep", c, { series: "random" }));
  sweep = makeReport("serve", runs, [], "loom bench serve --concurrency 1,4,16");

  // A compare-shaped report: three schedulers at one concurrency, prefix caching on/off.
  const cmp: RunResult[] = [];
  for (const s of ["naive", "static", "continuous"]) {
    const r = await oneRun(s, "schedulers", 8);
    r.config.scheduler = s;
    cmp.push(r);
  }
  for (const on of [true, false]) {
    const r = await oneRun(`prefix caching ${on ? "on" : "off"}`, "prefix caching", 4);
    r.config.prefixCaching = on;
    cmp.push(r);
  }
  compare = makeReport("compare", cmp, compareRatios(cmp), "loom bench compare");
});

after(async () => {
  await fake?.close();
});

test("the HTML report is one self-contained file with the plots and the data", () => {
  const html = renderHtml(sweep);
  assert.match(html, /^<!doctype html>/);
  // Nothing to fetch: no external scripts, styles, images or fonts.
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|<img[^>]+src=|@import|url\(/i);
  for (const m of ["cdf-ttft", "cdf-tpot", "cdf-itl", "cdf-e2el"]) assert.ok(html.includes(`data-kind="${m}"`), m);
  for (const m of ["vs-concurrency-output-throughput", "vs-concurrency-e2el-median", "vs-concurrency-ttft-median"]) {
    assert.ok(html.includes(`data-kind="${m}"`), m);
  }
  const data = /<script type="application\/json" id="bench-data">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(data, "the report's JSON is embedded");
  const parsed = JSON.parse(data[1]) as BenchReport;
  assert.equal(parsed.runs.length, 3);
  assert.equal(parsed.runs[0].requests.length, 24);
});

test("a compare report draws bars per configuration and lists the ratios", () => {
  const html = renderHtml(compare);
  assert.ok(html.includes('data-kind="bars-output-throughput"'));
  assert.ok(html.includes('data-kind="bars-e2el-median"'));
  assert.ok(html.includes('data-kind="bars-ttft-median"'));
  assert.match(html, /throughput continuous\/naive/);
  assert.match(html, /median TTFT prefix off\/on/);
  assert.equal((html.match(/<section class="group"/g) ?? []).length, 2);
});

test("headless Chromium renders the plots (screenshot saved)", {
  skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install chromium)`,
  timeout: 120_000,
}, async () => {
  let pw: Playwright;
  try {
    // LOOM_PLAYWRIGHT_CORE: a path to playwright-core installed elsewhere (development without the dev dependency).
    const mod = (await import(process.env.LOOM_PLAYWRIGHT_CORE ?? "playwright-core")) as Playwright & {
      default?: Playwright;
    };
    pw = mod.chromium ? mod : mod.default!;
  } catch (e) {
    assert.fail(`playwright-core is not installed (a dev dependency of this test): ${(e as Error).message}`);
  }
  const files = writeReport(sweep, { html: join(outDir, "sweep.html") });
  writeReport(compare, { html: join(outDir, "compare.html"), json: join(outDir, "compare.json") });
  const browser = await pw.chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  try {
    for (const [name, file] of [
      ["sweep", files[0]],
      ["compare", join(outDir, "compare.html")],
    ]) {
      const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
      const external: string[] = [];
      const errors: string[] = [];
      page.on("request", (r) => {
        if (!r.url().startsWith("file:")) external.push(r.url());
      });
      page.on("pageerror", (e) => errors.push(e.message));
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text());
      });
      await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
      const info = await page.evaluate(() => {
        const svgs = [...document.querySelectorAll("svg.plot")];
        return svgs.map((svg) => {
          const box = svg.getBoundingClientRect();
          const paths = [...svg.querySelectorAll("path.series")].map((p) => {
            const el = p as SVGPathElement;
            return {
              points: Number(el.dataset.points),
              length: el.getTotalLength(),
              width: el.getBoundingClientRect().width,
            };
          });
          return {
            kind: (svg as SVGSVGElement).dataset.kind ?? "",
            width: box.width,
            height: box.height,
            paths,
            bars: [...svg.querySelectorAll("rect.bar")].map((b) => b.getBoundingClientRect().height),
            labels: [...svg.querySelectorAll(".axis-label")].map((t) => t.textContent ?? ""),
            ticks: svg.querySelectorAll(".tick").length,
            title: svg.querySelector(".plot-title")?.textContent ?? "",
          };
        });
      });
      assert.deepEqual(external, [], `${name}: the report fetched something`);
      assert.deepEqual(errors, [], `${name}: page errors`);
      const cdfs = info.filter((s) => s.kind.startsWith("cdf-"));
      assert.equal(cdfs.length, 4 * (name === "compare" ? 2 : 1), `${name}: CDF plots`);
      for (const s of info) {
        assert.ok(s.width > 300 && s.height > 200, `${name} ${s.kind}: drawn at ${s.width}×${s.height}`);
        assert.ok(s.title.length > 0, `${name} ${s.kind}: title`);
        assert.ok(s.ticks >= 4, `${name} ${s.kind}: ticks`);
      }
      for (const s of cdfs) {
        assert.ok(
          s.labels.some((l) => /\(ms\)/.test(l)),
          `${name} ${s.kind}: x axis labelled in ms`,
        );
        assert.ok(
          s.labels.some((l) => /fraction/.test(l)),
          `${name} ${s.kind}: y axis labelled`,
        );
        const lines = name === "compare" ? [3, 2] : [3];
        assert.ok(lines.includes(s.paths.length), `${name} ${s.kind}: one line per run (${s.paths.length})`);
        for (const p of s.paths) {
          assert.ok(p.points >= 20, `${name} ${s.kind}: a CDF with ${p.points} points`);
          assert.ok(p.length > 100 && p.width > 20, `${name} ${s.kind}: the path is drawn (${p.length}px)`);
        }
      }
      if (name === "sweep") {
        const vs = info.filter((s) => s.kind.startsWith("vs-concurrency-"));
        assert.equal(vs.length, 6);
        for (const s of vs) {
          assert.ok(
            s.labels.some((l) => /concurrency/.test(l)),
            `${s.kind}: x axis is concurrency`,
          );
          assert.equal(s.paths.length, 1);
          assert.equal(s.paths[0].points, 3, `${s.kind}: one point per concurrency`);
        }
      } else {
        const bars = info.filter((s) => s.kind.startsWith("bars-"));
        assert.ok(bars.length >= 6);
        for (const s of bars) assert.ok(s.bars.length >= 2 && s.bars.every((h) => h > 0), `${s.kind}: bars drawn`);
        const ratios = await page.locator("table.ratios tr").count();
        assert.ok(ratios >= 3, "ratios table");
      }
      const png = join(outDir, `report-${name}.png`);
      await page.screenshot({ path: png, fullPage: true });
      const bytes = readFileSync(png);
      assert.equal(bytes.subarray(1, 4).toString("latin1"), "PNG");
      assert.ok(statSync(png).size > 20_000, "a non-trivial screenshot");
      console.log(`# screenshot: ${png}`);
      await page.close();
    }
  } finally {
    await browser.close();
  }
});
