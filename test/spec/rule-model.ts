/**
 * A fake model whose next-token logits follow a rule of (last token, position): exact, instant and
 * predictable, so tests can place a stop token inside an accepted speculative run, or make a draft that
 * disagrees with the target at known positions. Logits fall off linearly around the rule's token, so
 * sampling at a temperature has a real spread. No KV cache: a draft built on it needs none.
 */
import { EngineCore } from "../../src/engine/engine-core.ts";
import type { ModelConfig } from "../../src/models/config.ts";
import type { LlamaGraph } from "../../src/models/graph.ts";
import type { LoadedModel } from "../../src/models/model.ts";
import type { SchedulerPolicy } from "../../src/scheduler/scheduler.ts";
import type { SpecConfig } from "../../src/spec/config.ts";
import { DraftProposer } from "../../src/spec/draft-proposer.ts";
import { NgramProposer } from "../../src/spec/ngram-proposer.ts";
import { SpeculativeDecoder } from "../../src/spec/spec-decoder.ts";

export const RULE_VOCAB = 64;
export const RULE_EOS = 2;

export type Rule = (token: number, position: number) => number;

/** Counts up: the token after t is t + 1 (wrapping, skipping EOS and the low ids). */
export const counting: Rule = (t) => (t + 1 >= RULE_VOCAB ? 3 : t + 1 === RULE_EOS ? 3 : t + 1);

export class RuleGraph {
  readonly cfg = { vocabSize: RULE_VOCAB } as ModelConfig;
  forwards = 0;
  constructor(readonly rule: Rule) {}

  forward(meta: { tokenIds: Int32Array; positions: Int32Array }, logitRows: Int32Array): Float32Array {
    this.forwards++;
    const V = RULE_VOCAB;
    const out = new Float32Array(logitRows.length * V);
    for (let r = 0; r < logitRows.length; r++) {
      const next = this.rule(meta.tokenIds[logitRows[r]], meta.positions[logitRows[r]]);
      for (let v = 0; v < V; v++) out[r * V + v] = 8 - 0.75 * Math.abs(v - next);
    }
    return out;
  }

  copyBlocks(): void {}
}

export interface RuleCoreOptions {
  draft?: Rule | "ngram" | null;
  k?: number;
  maxModelLen?: number;
  numBlocks?: number;
  maxNumBatchedTokens?: number;
  maxNumSeqs?: number;
  policy?: SchedulerPolicy;
}

/** An EngineCore over the rule model, with a draft rule (or n-gram lookup) when given. */
export function ruleCore(target: Rule, o: RuleCoreOptions = {}): EngineCore {
  const blockSize = 4;
  const maxModelLen = o.maxModelLen ?? 64;
  const maxNumBatchedTokens = o.maxNumBatchedTokens ?? 64;
  const maxNumSeqs = o.maxNumSeqs ?? 8;
  const model = {
    dir: "rule",
    name: "rule",
    config: { vocabSize: RULE_VOCAB, eosTokenIds: [RULE_EOS] } as ModelConfig,
    graph: new RuleGraph(target) as unknown as LlamaGraph,
  } satisfies LoadedModel;
  let spec: SpeculativeDecoder | null = null;
  if (o.draft) {
    const config: SpecConfig = {
      method: o.draft === "ngram" ? "ngram" : "draft",
      draftModel: null,
      numSpeculativeTokens: o.k ?? 4,
      ngramMin: 1,
      ngramMax: 3,
      disableByBatchSize: 0,
    };
    const proposer =
      o.draft === "ngram"
        ? new NgramProposer(1, 3)
        : new DraftProposer(
            new RuleGraph(o.draft) as unknown as LlamaGraph,
            { maxTokens: maxNumBatchedTokens, maxSeqs: maxNumSeqs, maxModelLen, blockSize },
            [RULE_EOS],
          );
    spec = new SpeculativeDecoder(config, proposer, RULE_VOCAB, [RULE_EOS]);
  }
  return new EngineCore(
    model,
    {
      maxNumSeqs,
      maxNumBatchedTokens,
      maxModelLen,
      blockSize,
      numBlocks: o.numBlocks ?? 64,
      enablePrefixCaching: true,
      policy: o.policy ?? "continuous",
    },
    spec,
  );
}
