/**
 * The progress bar of a benchmark run (cli-progress on stderr). Off a terminal it prints a plain line every
 * few seconds instead of redrawing (noTTYOutput), so CI logs stay readable.
 */
import cliProgress from "cli-progress";
import type { RequestRecord } from "./types.ts";

export interface Progress {
  done(record: RequestRecord): void;
  stop(): void;
}

const SILENT: Progress = { done() {}, stop() {} };

export function createProgress(label: string, total: number, enabled: boolean): Progress {
  if (!enabled || total <= 0) return SILENT;
  const stream = process.stderr;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label} |{bar}| {value}/{total} requests | {elapsed}s | failed {failed}`,
      noTTYOutput: !stream.isTTY,
      notTTYSchedule: 5000,
      hideCursor: stream.isTTY ? true : undefined,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  const t0 = performance.now();
  let failed = 0;
  const payload = () => ({ failed, elapsed: ((performance.now() - t0) / 1000).toFixed(1) });
  bar.start(total, 0, payload());
  let stopped = false;
  return {
    done(record) {
      if (stopped) return;
      if (!record.ok) failed++;
      bar.increment(1, payload());
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.update(payload());
      bar.stop();
    },
  };
}
