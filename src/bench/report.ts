/** Assembles a benchmark report and writes it as JSON and/or HTML. */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, resolve } from "node:path";
import { renderHtml } from "./report-html.ts";
import type { BenchReport, Ratio, RunResult } from "./types.ts";

export function makeReport(
  kind: BenchReport["kind"],
  runs: RunResult[],
  ratios: Ratio[],
  command: string,
): BenchReport {
  return {
    tool: "loom bench",
    kind,
    createdAt: new Date().toISOString(),
    command,
    host: { platform: `${os.platform()} ${os.arch()}`, cpus: os.cpus().length, node: process.version },
    runs,
    ratios,
  };
}

function write(path: string, text: string): string {
  const full = resolve(path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, text);
  return full;
}

/** Writes the requested files; returns their absolute paths. */
export function writeReport(report: BenchReport, files: { json?: string; html?: string }): string[] {
  const out: string[] = [];
  if (files.json) out.push(write(files.json, `${JSON.stringify(report, null, 2)}\n`));
  if (files.html) out.push(write(files.html, renderHtml(report)));
  return out;
}
