/**
 * Token text and the two logprobs shapes: the legacy completions one (`tokens`, `token_logprobs`,
 * `top_logprobs`, `text_offset`) and the chat one (`{content: [{token, logprob, bytes, top_logprobs}]}`).
 */
import type { TokenLogprob } from "../engine/types.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/** GPT-2 byte-level alphabet: printable stand-in character → byte. */
const BYTE_LEVEL: ReadonlyMap<string, number> = (() => {
  const bytes: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bytes.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bytes.push(b);
  for (let b = 0xae; b <= 0xff; b++) bytes.push(b);
  const chars = [...bytes];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + extra++);
    }
  }
  return new Map(bytes.map((b, i) => [String.fromCharCode(chars[i]), b]));
})();

/** Token text and UTF-8 bytes, cached per tokenizer (vocabularies are small next to the traffic). */
export class TokenStrings {
  readonly #text = new Map<number, string>();
  readonly #bytes = new Map<number, number[]>();

  constructor(private readonly tokenizer: Tokenizer) {}

  /** The text one token decodes to on its own (a lone byte of a multi-byte character shows as U+FFFD). */
  text(id: number): string {
    let t = this.#text.get(id);
    if (t === undefined) {
      t = this.tokenizer.decode([id]);
      if (t === "") t = this.tokenizer.tokenText(id);
      this.#text.set(id, t);
    }
    return t;
  }

  /** The token's raw bytes: exact for byte-level (Ġ…) and byte-fallback (<0xNN>) pieces, else UTF-8 of text. */
  bytes(id: number): number[] {
    let b = this.#bytes.get(id);
    if (b === undefined) {
      const piece = this.tokenizer.tokenText(id);
      const fallback = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
      if (fallback) b = [Number.parseInt(fallback[1], 16)];
      else if (piece !== "" && [...piece].every((c) => BYTE_LEVEL.has(c)))
        b = [...piece].map((c) => BYTE_LEVEL.get(c)!);
      else b = [...Buffer.from(this.text(id), "utf8")];
      this.#bytes.set(id, b);
    }
    return b;
  }
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[] | null;
  text_offset: number[];
}

/** Legacy completions logprobs for `entries`; `offset` is the text length already emitted for the choice. */
export function completionLogprobs(
  strings: TokenStrings,
  entries: readonly TokenLogprob[],
  k: number,
  offset: number,
): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let pos = offset;
  for (const e of entries) {
    const text = strings.text(e.token);
    out.tokens.push(text);
    out.token_logprobs.push(safeLogprob(e.logprob));
    const top: Record<string, number> = Object.create(null);
    for (const alt of e.top.slice(0, k)) top[strings.text(alt.token)] ??= safeLogprob(alt.logprob);
    // As vLLM does: the sampled token is always among the alternatives shown.
    top[text] ??= safeLogprob(e.logprob);
    out.top_logprobs!.push({ ...top });
    out.text_offset.push(pos);
    pos += text.length;
  }
  return out;
}

export function mergeCompletionLogprobs(into: CompletionLogprobs, more: CompletionLogprobs): void {
  into.tokens.push(...more.tokens);
  into.token_logprobs.push(...more.token_logprobs);
  into.top_logprobs!.push(...(more.top_logprobs ?? []));
  into.text_offset.push(...more.text_offset);
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export function chatLogprobs(strings: TokenStrings, entries: readonly TokenLogprob[], k: number): ChatTokenLogprob[] {
  return entries.map((e) => ({
    token: strings.text(e.token),
    logprob: safeLogprob(e.logprob),
    bytes: strings.bytes(e.token),
    top_logprobs: e.top.slice(0, k).map((alt) => ({
      token: strings.text(alt.token),
      logprob: safeLogprob(alt.logprob),
      bytes: strings.bytes(alt.token),
    })),
  }));
}

/** JSON has no -Infinity: a token with zero probability reports vLLM's floor instead. */
function safeLogprob(x: number): number {
  return Number.isFinite(x) ? x : -9999;
}
