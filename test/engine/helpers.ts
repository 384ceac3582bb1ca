// Helpers for driving an EngineCore directly (in-thread) in tests.
import { buildCore } from "../../src/engine/build-core.ts";
import type { CoreRequest, EngineCore } from "../../src/engine/engine-core.ts";
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions } from "../../src/engine/options.ts";
import type { SamplingParams, SeqDelta } from "../../src/engine/types.ts";
import { normalizeSamplingParams } from "../../src/sampler/params.ts";

export const SMALL_MODEL = "test/fixtures/models/arch-llama3-rope";

export async function makeCore(opts: Partial<EngineOptions> = {}): Promise<EngineCore> {
  const { core } = await buildCore({ ...DEFAULT_ENGINE_OPTIONS, model: SMALL_MODEL, backend: "reference", ...opts });
  return core;
}

export function params(p: Partial<SamplingParams> = {}, vocabSize = 4096): SamplingParams {
  return normalizeSamplingParams({ temperature: 0, maxTokens: 8, ...p }, { vocabSize, defaultMaxTokens: 16 });
}

let nextId = 0;
export function request(
  promptTokenIds: number[],
  p: Partial<SamplingParams> = {},
  extra: Partial<CoreRequest> = {},
): CoreRequest {
  return { id: `r${nextId++}`, promptTokenIds, params: params(p), ...extra };
}

/** Output token ids per request id and sequence index, plus finish reasons. */
export interface Outputs {
  tokens: Map<string, number[][]>;
  reasons: Map<string, (string | null)[]>;
  deltas: SeqDelta[];
}

export function collect(
  deltas: SeqDelta[],
  out: Outputs = { tokens: new Map(), reasons: new Map(), deltas: [] },
): Outputs {
  for (const d of deltas) {
    out.deltas.push(d);
    const seqs = out.tokens.get(d.requestId) ?? [];
    (seqs[d.index] ??= []).push(...d.tokenIds);
    out.tokens.set(d.requestId, seqs);
    const reasons = out.reasons.get(d.requestId) ?? [];
    if (d.finishReason) reasons[d.index] = d.finishReason;
    out.reasons.set(d.requestId, reasons);
  }
  return out;
}

/** Steps until no work is left; `onStep` runs after every step (invariant checks, aborts…). */
export function drain(core: EngineCore, onStep?: (step: number) => void, out?: Outputs): Outputs {
  const res = out ?? collect([]);
  let step = 0;
  while (core.hasWork()) {
    collect(core.step(), res);
    onStep?.(step++);
    if (step > 100_000) throw new Error("engine did not finish");
  }
  return res;
}

/** A deterministic pseudo-random prompt of `len` token ids (ids 3..4095, avoiding specials). */
export function prompt(len: number, seed: number): number[] {
  let x = seed * 2654435761 + 1;
  return Array.from({ length: len }, () => {
    x = (Math.imul(x ^ (x >>> 15), 2246822507) + 0x6d2b79f5) >>> 0;
    return 3 + (x % 4093);
  });
}
