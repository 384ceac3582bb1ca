/**
 * The bundled tiny-llama with speculative decoding (its draft model, and n-gram lookup): greedy outputs on
 * every reference prompt (test/fixtures/refs/tiny-llama.json) equal the transformers greedy ids and the
 * engine's own output without speculation, alone and with 16 concurrent requests.
 *
 * Runs on the native cpu backend when its addon loads (32 tokens per prompt), else on the slow reference
 * backend with 6 tokens per prompt (LOOM_TEST_BACKEND=reference forces it).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { CpuBackend } from "../../src/backends/cpu/cpu-backend.ts";
import type { CoreRequest, EngineCore } from "../../src/engine/engine-core.ts";
import type { EngineOptions } from "../../src/engine/options.ts";
import { drain, makeCore, request } from "../engine/helpers.ts";

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const MODEL = root("models/tiny-llama");
const DRAFT = root("models/tiny-llama-draft");

interface RefCase {
  name: string;
  prompt_ids: number[];
  greedy_ids: number[];
}
const CASES: RefCase[] = JSON.parse(readFileSync(root("test/fixtures/refs/tiny-llama.json"), "utf8")).cases;

const probe = CpuBackend.tryLoad({ threads: 1 });
const NATIVE = "backend" in probe;
if ("backend" in probe) probe.backend.dispose();
const BACKEND = (process.env.LOOM_TEST_BACKEND ?? (NATIVE ? "auto" : "reference")) as EngineOptions["backend"];
const SLOW = BACKEND === "reference";
const MAX_TOKENS = SLOW ? 6 : 32;

const BASE: Partial<EngineOptions> = { model: MODEL, backend: BACKEND, kvCacheMemory: 32 * 1024 * 1024 };
const SPECS: [string, Partial<EngineOptions>][] = [
  ["draft", { speculativeModel: DRAFT }],
  ["ngram", { speculativeMethod: "ngram" }],
];

function requests(copies: number): CoreRequest[] {
  const out: CoreRequest[] = [];
  for (let c = 0; c < copies; c++) {
    for (const k of CASES) {
      out.push(request(k.prompt_ids, { maxTokens: MAX_TOKENS, ignoreEos: true }, { id: `${k.name}#${c}` }));
    }
  }
  return out;
}

function run(core: EngineCore, reqs: CoreRequest[]): Map<string, number[]> {
  for (const r of reqs) core.addRequest({ ...r });
  const out = drain(core, () => core.scheduler.checkInvariants());
  assert.equal(core.stats().kvBlocksUsed, 0);
  return new Map(reqs.map((r) => [r.id, out.tokens.get(r.id)![0]]));
}

function checkRefs(got: Map<string, number[]>, what: string): void {
  for (const [id, toks] of got) {
    const c = CASES.find((k) => k.name === id.split("#")[0])!;
    const n = Math.min(toks.length, c.greedy_ids.length);
    assert.deepEqual(toks.slice(0, n), c.greedy_ids.slice(0, n), `${what}: ${id} vs transformers`);
  }
}

test(`tiny-llama greedy with speculation = without = transformers, one request at a time (${BACKEND})`, async () => {
  const plain = await makeCore(BASE);
  const expected = new Map<string, number[]>();
  for (const r of requests(1)) for (const [id, t] of run(plain, [r])) expected.set(id, t);
  checkRefs(expected, "no speculation");
  for (const [name, spec] of SPECS) {
    const core = await makeCore({ ...BASE, ...spec });
    for (const r of requests(1)) {
      const got = run(core, [r]);
      assert.deepEqual(got.get(r.id), expected.get(r.id), `${name}: ${r.id}`);
    }
    const st = core.stats();
    assert.ok(st.specAcceptedTokens! > 0, `${name}: some draft tokens accepted`);
  }
});

test(`tiny-llama greedy with speculation and 16 concurrent requests (${BACKEND})`, async () => {
  const reqs = requests(2).slice(0, 16);
  for (const [name, spec] of SPECS) {
    // Speculation kept on at 16 sequences, and the default auto-off threshold.
    for (const disable of SLOW ? [0] : [0, undefined]) {
      const core = await makeCore({ ...BASE, ...spec, speculativeDisableByBatchSize: disable });
      const got = run(core, reqs);
      checkRefs(got, `${name}, disable-by-batch-size ${disable ?? "default"}`);
      if (disable === 0) assert.ok(core.stats().specSteps! > 0);
    }
  }
});
