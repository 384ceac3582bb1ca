/**
 * A deterministic stand-in for the real engine, for the server tests: the real tokenizer of the bundled
 * model, words picked by a seeded RNG, a configurable delay per token, a bounded number of running requests
 * with a waiting queue (so 429 can be tested), KV block accounting, stop strings, logprobs and aborts.
 */
import { fileURLToPath } from "node:url";
import { type Engine, PromptTooLongError } from "../../src/engine/engine.ts";
import type {
  EngineInfo,
  EngineStats,
  FinishReason,
  GenerateOptions,
  GenerationDelta,
  Prompt,
  SamplingParams,
  TokenLogprob,
} from "../../src/engine/types.ts";
import { normalizeSamplingParams, ParamError } from "../../src/sampler/params.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { mulberry32 } from "../helpers/mulberry32.ts";

export const TINY_LLAMA = fileURLToPath(new URL("../../models/tiny-llama", import.meta.url));

export interface FakeEngineOptions {
  /** Milliseconds between steps (one token per running sequence per step). Default 2. */
  tokenDelayMs?: number;
  /** Requests running at once; the rest wait. Default 4. */
  maxRunning?: number;
  blockSize?: number;
  numBlocks?: number;
  maxModelLen?: number;
  defaultMaxTokens?: number;
  /** Sequences end with EOS after this many tokens (unless ignore_eos). Default: never. */
  eosAfter?: number | null;
  modelName?: string;
  /** generate() throws a plain Error (a bug, not a client error) for this prompt text. */
  crashOnPrompt?: string;
}

interface FakeSeq {
  index: number;
  rand: () => number;
  tokens: number[];
  text: string;
  /** Text already emitted. */
  emitted: number;
  done: boolean;
}

interface FakeRequest {
  id: string;
  promptIds: number[];
  params: SamplingParams;
  seqs: FakeSeq[];
  queue: GenerationDelta[];
  wake: (() => void) | null;
  numDone: number;
  running: boolean;
}

function hashIds(ids: readonly number[], salt: number): number {
  let h = 0x811c9dc5 ^ salt;
  for (const id of ids) h = Math.imul(h ^ id, 0x01000193) >>> 0;
  return h >>> 0;
}

let cachedTokenizer: Promise<Tokenizer> | null = null;

export class FakeEngine implements Engine {
  readonly info: EngineInfo;
  readonly #opts: Required<Omit<FakeEngineOptions, "crashOnPrompt" | "eosAfter">> & FakeEngineOptions;
  /** Readable word tokens (" the", " cat"...) the fake picks from. */
  readonly #words: number[];
  readonly #requests = new Map<string, FakeRequest>();
  readonly #waiting: FakeRequest[] = [];
  readonly #running: FakeRequest[] = [];
  #timer: NodeJS.Timeout | null = null;
  #nextId = 0;
  #closed = false;
  readonly stats0 = { promptTokens: 0, generationTokens: 0, steps: 0, prefixCacheQueries: 0 };
  readonly #finished: Record<string, number> = {};
  /** Every generate() call's parameters, for assertions. */
  readonly calls: { prompt: Prompt; params: Partial<SamplingParams>; opts: GenerateOptions }[] = [];

  private constructor(
    readonly tokenizer: Tokenizer,
    opts: FakeEngineOptions,
  ) {
    this.#opts = {
      tokenDelayMs: 2,
      maxRunning: 4,
      blockSize: 16,
      numBlocks: 512,
      maxModelLen: 2048,
      defaultMaxTokens: 16,
      modelName: "tiny-llama",
      ...opts,
    };
    const o = this.#opts;
    this.info = {
      modelName: o.modelName,
      modelDir: TINY_LLAMA,
      backend: "fake",
      dtype: "f32",
      maxModelLen: o.maxModelLen,
      blockSize: o.blockSize,
      numBlocks: o.numBlocks,
      kvCapacityTokens: o.numBlocks * o.blockSize,
      kvCacheDtype: "f32",
      vocabSize: tokenizer.vocabSize,
      scheduler: "fake",
    };
    this.#words = [];
    for (let id = 0; id < tokenizer.vocabSize; id++) {
      if (/^Ġ[a-z]{2,}$/.test(tokenizer.tokenText(id))) this.#words.push(id);
    }
  }

  static async create(opts: FakeEngineOptions = {}): Promise<FakeEngine> {
    cachedTokenizer ??= Tokenizer.load(TINY_LLAMA);
    return new FakeEngine(await cachedTokenizer, opts);
  }

  #tokenize(prompt: Prompt): number[] {
    if ("tokenIds" in prompt) {
      for (const id of prompt.tokenIds) {
        if (!Number.isInteger(id) || id < 0 || id >= this.info.vocabSize) {
          throw new ParamError("prompt", `token id ${id} is outside the vocabulary [0, ${this.info.vocabSize})`);
        }
      }
      return prompt.tokenIds.slice();
    }
    if ("messages" in prompt) {
      const text = this.tokenizer.applyChatTemplate(prompt.messages, {
        addGenerationPrompt: prompt.addGenerationPrompt ?? true,
      });
      return this.tokenizer.encode(text, { addSpecialTokens: false });
    }
    if (this.#opts.crashOnPrompt !== undefined && prompt.text === this.#opts.crashOnPrompt) {
      throw new TypeError("fake engine bug: cannot read properties of undefined");
    }
    return this.tokenizer.encode(prompt.text);
  }

  generate(
    prompt: Prompt,
    params: Partial<SamplingParams>,
    opts: GenerateOptions = {},
  ): AsyncIterable<GenerationDelta> {
    this.calls.push({ prompt, params, opts });
    const promptIds = this.#tokenize(prompt);
    if (promptIds.length === 0) throw new ParamError("prompt", "the prompt is empty");
    if (promptIds.length + 1 > this.info.maxModelLen)
      throw new PromptTooLongError(promptIds.length, this.info.maxModelLen);
    const sp = normalizeSamplingParams(params, {
      vocabSize: this.info.vocabSize,
      maxModelLen: this.info.maxModelLen,
      defaultMaxTokens: this.#opts.defaultMaxTokens,
    });
    sp.maxTokens = Math.min(sp.maxTokens, this.info.maxModelLen - promptIds.length);
    if (this.#closed) throw new Error("the engine is shut down");
    const id = opts.requestId ?? `fake-${this.#nextId++}`;
    if (this.#requests.has(id)) throw new ParamError("request_id", `request id ${id} is already in flight`);
    const seqs: FakeSeq[] = [];
    for (let i = 0; i < sp.n; i++) {
      const seed =
        sp.temperature === 0
          ? hashIds(promptIds, 0)
          : sp.seed !== null
            ? hashIds([sp.seed, i], 1)
            : (Math.random() * 2 ** 32) >>> 0;
      seqs.push({ index: i, rand: mulberry32(seed), tokens: [], text: "", emitted: 0, done: false });
    }
    const req: FakeRequest = { id, promptIds, params: sp, seqs, queue: [], wake: null, numDone: 0, running: false };
    this.#requests.set(id, req);
    this.#waiting.push(req);
    this.stats0.promptTokens += promptIds.length;
    this.#schedule();
    return this.#stream(req, opts.signal);
  }

  async *#stream(req: FakeRequest, signal?: AbortSignal): AsyncGenerator<GenerationDelta> {
    const onAbort = () => this.abort(req.id);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
    try {
      while (true) {
        while (req.queue.length > 0) yield req.queue.shift()!;
        if (req.numDone >= req.params.n) return;
        await new Promise<void>((r) => {
          req.wake = r;
        });
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (req.numDone < req.params.n) this.abort(req.id);
    }
  }

  #push(req: FakeRequest, d: GenerationDelta): void {
    req.queue.push(d);
    const w = req.wake;
    req.wake = null;
    w?.();
  }

  #finish(
    req: FakeRequest,
    seq: FakeSeq,
    reason: FinishReason,
    tokenIds: number[],
    text: string,
    lp: TokenLogprob[] | null,
  ): void {
    seq.done = true;
    req.numDone++;
    this.#finished[reason] = (this.#finished[reason] ?? 0) + 1;
    this.#push(req, {
      requestId: req.id,
      index: seq.index,
      tokenIds,
      logprobs: lp,
      finishReason: reason,
      numPromptTokens: req.promptIds.length,
      text,
    });
    if (req.numDone >= req.params.n) this.#remove(req);
  }

  #remove(req: FakeRequest): void {
    this.#requests.delete(req.id);
    const w = this.#waiting.indexOf(req);
    if (w >= 0) this.#waiting.splice(w, 1);
    const r = this.#running.indexOf(req);
    if (r >= 0) this.#running.splice(r, 1);
  }

  abort(requestId: string): void {
    const req = this.#requests.get(requestId);
    if (!req) return;
    for (const seq of req.seqs) if (!seq.done) this.#finish(req, seq, "abort", [], "", null);
    this.#remove(req);
  }

  #schedule(): void {
    if (this.#timer !== null || this.#closed) return;
    if (this.#waiting.length === 0 && this.#running.length === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#step();
      this.#schedule();
    }, this.#opts.tokenDelayMs);
  }

  #step(): void {
    while (this.#running.length < this.#opts.maxRunning && this.#waiting.length > 0) {
      const req = this.#waiting.shift()!;
      req.running = true;
      this.#running.push(req);
      this.stats0.prefixCacheQueries += req.promptIds.length;
    }
    if (this.#running.length > 0) this.stats0.steps++;
    for (const req of [...this.#running]) {
      for (const seq of req.seqs) if (!seq.done) this.#stepSeq(req, seq);
    }
  }

  #stepSeq(req: FakeRequest, seq: FakeSeq): void {
    const p = req.params;
    const eosAfter = this.#opts.eosAfter;
    const eos = this.tokenizer.eosTokenIds[0];
    const count = seq.tokens.length + 1;
    const hitEos = !p.ignoreEos && eosAfter != null && count >= eosAfter && count > p.minTokens;
    const token = hitEos ? eos : this.#words[Math.floor(seq.rand() * this.#words.length)];
    seq.tokens.push(token);
    this.stats0.generationTokens++;
    const lp: TokenLogprob[] | null =
      p.logprobs === null
        ? null
        : [
            {
              token,
              logprob: -0.25 * (count % 4) - 0.1,
              top: Array.from({ length: p.logprobs }, (_, j) => ({
                token: j === 0 ? token : this.#words[(this.#words.indexOf(token) + j) % this.#words.length],
                logprob: -0.25 * (count % 4) - 0.1 - j,
              })),
            },
          ];
    if (hitEos) {
      this.#finish(req, seq, "stop", [token], this.#flush(seq), lp);
      return;
    }
    seq.text += this.tokenizer.decode([token]);
    // Stop strings: cut before the earliest one; hold back text that could be the start of one.
    for (const stop of p.stop) {
      const at = seq.text.indexOf(stop, Math.max(0, seq.emitted - stop.length));
      if (at >= 0) {
        const end = p.includeStopStrInOutput ? at + stop.length : at;
        const text = seq.text.slice(seq.emitted, Math.max(seq.emitted, end));
        seq.emitted = Math.max(seq.emitted, end);
        this.#finish(req, seq, "stop", [token], text, lp);
        return;
      }
    }
    if (seq.tokens.length >= p.maxTokens) {
      this.#finish(req, seq, "length", [token], this.#flush(seq), lp);
      return;
    }
    const hold = p.stop.reduce((m, s) => Math.max(m, s.length - 1), 0);
    const upTo = Math.max(seq.emitted, seq.text.length - hold);
    const text = seq.text.slice(seq.emitted, upTo);
    seq.emitted = upTo;
    this.#push(req, {
      requestId: req.id,
      index: seq.index,
      tokenIds: [token],
      logprobs: lp,
      finishReason: null,
      numPromptTokens: req.promptIds.length,
      text,
    });
  }

  #flush(seq: FakeSeq): string {
    const text = seq.text.slice(seq.emitted);
    seq.emitted = seq.text.length;
    return text;
  }

  numWaiting(): number {
    return this.#waiting.length;
  }

  get numRunning(): number {
    return this.#running.length;
  }

  #blocksUsed(): number {
    let blocks = 0;
    for (const req of this.#running) {
      for (const seq of req.seqs) {
        if (!seq.done) blocks += Math.ceil((req.promptIds.length + seq.tokens.length) / this.#opts.blockSize);
      }
    }
    return blocks;
  }

  async stats(): Promise<EngineStats> {
    return {
      numRunning: this.#running.length,
      numWaiting: this.#waiting.length,
      kvBlocksUsed: this.#blocksUsed(),
      kvBlocksTotal: this.#opts.numBlocks,
      kvBlockSize: this.#opts.blockSize,
      prefixCacheQueries: this.stats0.prefixCacheQueries,
      prefixCacheHits: 0,
      numPreemptions: 0,
      promptTokens: this.stats0.promptTokens,
      generationTokens: this.stats0.generationTokens,
      finished: { ...this.#finished },
      steps: this.stats0.steps,
      computedTokens: this.stats0.promptTokens + this.stats0.generationTokens,
    };
  }

  async close(): Promise<void> {
    for (const id of [...this.#requests.keys()]) this.abort(id);
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
