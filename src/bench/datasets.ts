/**
 * Benchmark datasets. Each yields work items: one request, or (multi-turn) a conversation whose turns are
 * sent one after another, each including the earlier turns and the server's answers to them.
 *
 * - random:        input/output lengths uniform in [len·(1−r), len·(1+r)] (r = --range-ratio), as vLLM's
 *                  random dataset.
 * - fixed:         exactly --input-len / --output-len tokens, with ignore_eos so every answer is full length.
 * - shared-prefix: --num-groups groups of --group-size requests; a group shares a --prefix-len token prefix
 *                  (a long system prompt) followed by a --input-len token suffix of its own; shuffled.
 * - multi-turn:    chat conversations of --num-turns turns; turn k sends turns 1..k−1 with the answers.
 *
 * Prompts of a given token length: /v1/completions takes token ids (`prompt: number[]`), drawn from the
 * ids the server's /tokenize gives for ordinary words, so the length is exact. Chat prompts are words,
 * their count set by the tokens-per-word ratio measured through /tokenize (assumed when it is absent).
 */
import type { BenchRng } from "./random.ts";
import type { ChatTurn, Endpoint, RequestSpec, StreamResult } from "./types.ts";

export const DATASETS = ["random", "fixed", "shared-prefix", "multi-turn"] as const;
export type DatasetName = (typeof DATASETS)[number];

/** One unit of work: `turns` requests sent in sequence (1 for all but multi-turn). */
export interface WorkItem {
  turns: number;
  /** Group (shared-prefix) or conversation id, for reports. */
  group?: number;
  /** The request of `turn`, given what the earlier turns got back. */
  build(turn: number, history: readonly StreamResult[]): RequestSpec;
}

const WORDS = (
  "the of and to in is was for on that with as by at from his her they this which were are be had not " +
  "have one all their there been but has when who will more no if out so said what up its about into " +
  "than them can only other new some could time these two may then do first any my now such like our " +
  "over man me even most made after also did many before must through back years where much your way " +
  "well down should because each just those people how too little state good very make world still own " +
  "see men work long get here between both life being under never day same another know while last might " +
  "us great old year off come since against go came right used take three house water light river city " +
  "garden morning window story music paper table letter mountain forest summer winter island market road " +
  "bridge station kitchen painting engine signal number planet ocean valley village harbor lantern compass"
).split(" ");

/** Makes prompts of a given length, calibrated against the server's tokenizer when it could be. */
export class PromptMaker {
  /**
   * @param pool token ids of ordinary words (empty: no /tokenize, token-id prompts unavailable)
   * @param tokensPerWord measured (or assumed) tokens per word of WORDS text
   */
  constructor(
    readonly pool: readonly number[],
    readonly tokensPerWord: number,
    readonly calibrated: boolean,
  ) {}

  /** The sample text whose tokenization calibrates the maker. */
  static sampleText(): string {
    return WORDS.join(" ");
  }

  /** From the ids /tokenize gave for sampleText() (null: no /tokenize; assume 1.3 tokens a word). */
  static fromTokenization(ids: readonly number[] | null): PromptMaker {
    if (ids === null || ids.length === 0) return new PromptMaker([], 1.3, false);
    const pool = [...new Set(ids)];
    return new PromptMaker(pool, ids.length / WORDS.length, true);
  }

  get hasIds(): boolean {
    return this.pool.length > 0;
  }

  ids(n: number, rng: BenchRng): number[] {
    if (!this.hasIds) throw new Error("no token ids to draw from (the server has no /tokenize)");
    return Array.from({ length: n }, () => rng.pick(this.pool));
  }

  text(n: number, rng: BenchRng): string {
    const words = Math.max(1, Math.round(n / this.tokensPerWord));
    return Array.from({ length: words }, () => rng.pick(WORDS)).join(" ");
  }

  /** A completions prompt of n tokens: ids when available, else words. */
  prompt(n: number, rng: BenchRng): number[] | string {
    return this.hasIds ? this.ids(n, rng) : this.text(n, rng);
  }
}

export interface DatasetOptions {
  numPrompts: number;
  inputLen: number;
  outputLen: number;
  rangeRatio: number;
  /** shared-prefix */
  numGroups: number;
  groupSize: number;
  prefixLen: number;
  /** multi-turn */
  numTurns: number;
  endpoint: Endpoint;
  /** Force ignore_eos (fixed always sets it). */
  ignoreEos: boolean;
  extra?: Record<string, unknown>;
}

/** Uniform integer length around `len` (vLLM's random dataset bounds), at least `min`. */
export function sampleLen(len: number, rangeRatio: number, rng: BenchRng, min = 1): number {
  if (!(rangeRatio >= 0 && rangeRatio < 1)) throw new RangeError(`--range-ratio must be in [0, 1), got ${rangeRatio}`);
  const lo = Math.max(min, Math.floor(len * (1 - rangeRatio)));
  const hi = Math.max(lo, Math.ceil(len * (1 + rangeRatio)));
  return rng.int(lo, hi);
}

function single(spec: RequestSpec, group?: number): WorkItem {
  return { turns: 1, group, build: () => spec };
}

function singlePrompt(
  o: DatasetOptions,
  maker: PromptMaker,
  rng: BenchRng,
  inLen: number,
  outLen: number,
  ignoreEos: boolean,
  prefix?: { ids?: number[]; text?: string; len: number },
): RequestSpec {
  if (o.endpoint === "chat") {
    const messages: ChatTurn[] = [];
    if (prefix?.text !== undefined) messages.push({ role: "system", content: prefix.text });
    messages.push({ role: "user", content: maker.text(inLen, rng) });
    return {
      endpoint: "chat",
      messages,
      promptLen: inLen + (prefix?.len ?? 0),
      maxTokens: outLen,
      ignoreEos,
      extra: o.extra,
    };
  }
  const body = maker.prompt(inLen, rng);
  let prompt: number[] | string = body;
  if (prefix) prompt = Array.isArray(body) ? [...(prefix.ids ?? []), ...body] : `${prefix.text ?? ""} ${body}`;
  return {
    endpoint: "completions",
    prompt,
    promptLen: inLen + (prefix?.len ?? 0),
    maxTokens: outLen,
    ignoreEos,
    extra: o.extra,
  };
}

export function buildDataset(name: DatasetName, o: DatasetOptions, maker: PromptMaker, rng: BenchRng): WorkItem[] {
  const check = (what: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`${what} must be an integer ≥ ${min}, got ${v}`);
  };
  check("--input-len", o.inputLen, 1);
  check("--output-len", o.outputLen, 1);
  switch (name) {
    case "random": {
      check("--num-prompts", o.numPrompts, 1);
      return Array.from({ length: o.numPrompts }, () => {
        const inLen = sampleLen(o.inputLen, o.rangeRatio, rng);
        const outLen = sampleLen(o.outputLen, o.rangeRatio, rng);
        return single(singlePrompt(o, maker, rng, inLen, outLen, o.ignoreEos));
      });
    }
    case "fixed": {
      check("--num-prompts", o.numPrompts, 1);
      return Array.from({ length: o.numPrompts }, () =>
        single(singlePrompt(o, maker, rng, o.inputLen, o.outputLen, true)),
      );
    }
    case "shared-prefix": {
      check("--num-groups", o.numGroups, 1);
      check("--group-size", o.groupSize, 1);
      check("--prefix-len", o.prefixLen, 1);
      const items: WorkItem[] = [];
      for (let g = 0; g < o.numGroups; g++) {
        const prefix =
          o.endpoint === "chat" || !maker.hasIds
            ? { text: maker.text(o.prefixLen, rng), len: o.prefixLen }
            : { ids: maker.ids(o.prefixLen, rng), len: o.prefixLen };
        for (let i = 0; i < o.groupSize; i++) {
          const inLen = sampleLen(o.inputLen, o.rangeRatio, rng);
          items.push(single(singlePrompt(o, maker, rng, inLen, o.outputLen, o.ignoreEos, prefix), g));
        }
      }
      return rng.shuffle(items);
    }
    case "multi-turn": {
      check("--num-prompts", o.numPrompts, 1);
      check("--num-turns", o.numTurns, 1);
      const conversations = Math.ceil(o.numPrompts / o.numTurns);
      const items: WorkItem[] = [];
      for (let c = 0; c < conversations; c++) {
        // The last conversation is cut short so that the total is numPrompts requests.
        const turns = Math.min(o.numTurns, o.numPrompts - c * o.numTurns);
        const users = Array.from({ length: turns }, () => {
          const len = sampleLen(o.inputLen, o.rangeRatio, rng);
          return { text: maker.text(len, rng), len };
        });
        const outLens = Array.from({ length: turns }, () => sampleLen(o.outputLen, o.rangeRatio, rng));
        items.push({
          turns,
          group: c,
          build(turn, history) {
            const messages: ChatTurn[] = [];
            let promptLen = 0;
            for (let k = 0; k < turn; k++) {
              messages.push({ role: "user", content: users[k].text });
              messages.push({ role: "assistant", content: history[k]?.text ?? "" });
              promptLen += users[k].len + (history[k]?.usageCompletionTokens ?? history[k]?.chunkTimes.length ?? 0);
            }
            messages.push({ role: "user", content: users[turn].text });
            promptLen += users[turn].len;
            return {
              endpoint: "chat",
              messages,
              promptLen,
              maxTokens: outLens[turn],
              ignoreEos: o.ignoreEos,
              extra: o.extra,
            };
          },
        });
      }
      return items;
    }
    default:
      throw new Error(`unknown dataset "${name as string}" (use ${DATASETS.join(", ")})`);
  }
}

/** Total requests in a dataset. */
export function countRequests(items: readonly WorkItem[]): number {
  return items.reduce((s, it) => s + it.turns, 0);
}
