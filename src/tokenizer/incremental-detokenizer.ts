/**
 * Streaming ids → text without ever emitting half a character.
 *
 * Same scheme as vLLM/TGI: keep a prefix offset and a read offset into the ids; decode ids[prefix:read] and
 * ids[prefix:]; emit the difference once the new text no longer ends with U+FFFD (an incomplete UTF-8 sequence).
 * Decoding a window that starts a few tokens back (rather than at the new token) keeps decoders that treat the
 * first token specially (Metaspace / Strip removing a leading space) consistent with a full decode.
 */
import type { Tokenizer } from "./tokenizer.ts";

const REPLACEMENT = "\uFFFD";
/** Prompt tokens kept as decoding context (vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET). */
const PROMPT_CONTEXT_TOKENS = 5;

/** Options of {@link IncrementalDetokenizer}. */
export interface IncrementalDetokenizerOptions {
  /** Drop special tokens (as Tokenizer.decode with skipSpecialTokens). Default false. */
  skipSpecialTokens?: boolean;
  /** The prompt the generated ids follow: its last tokens give context (e.g. so a leading space survives). */
  promptIds?: readonly number[];
}

function stripTrailingReplacement(text: string): string {
  let end = text.length;
  while (end > 0 && text[end - 1] === REPLACEMENT) end--;
  return text.slice(0, end);
}

/**
 * Turns generated token ids into text incrementally. The concatenation of every push() result and flush()
 * equals `tokenizer.decode(allIds, { skipSpecialTokens })`, whatever the split of the ids into pushes.
 */
export class IncrementalDetokenizer {
  private readonly skipSpecial: boolean;
  /** The ids from the prefix offset on (earlier ones are no longer needed and are dropped). */
  private ids: number[] = [];
  /** ids[0:readOffset] have been emitted; ids[readOffset:] are held back. The prefix offset is always 0. */
  private readOffset = 0;
  /** Where the next window starts: readOffset, except after a prompt that ends mid-character. */
  private nextWindowStart = 0;
  /** decode(ids[0:readOffset]), cached. */
  private prefixText = "";
  private emitted = "";

  /** `tokenizer` decodes; see {@link IncrementalDetokenizerOptions}. */
  constructor(
    private readonly tokenizer: Tokenizer,
    opts: IncrementalDetokenizerOptions = {},
  ) {
    this.skipSpecial = opts.skipSpecialTokens ?? false;
    if (opts.promptIds && opts.promptIds.length > 0) {
      this.ids = opts.promptIds.filter((id) => this.keep(id)).slice(-PROMPT_CONTEXT_TOKENS);
      this.readOffset = this.ids.length;
      this.prefixText = this.decode(this.ids);
      // A prompt ending mid-character: windows must start on a character boundary, so back off to one.
      let start = this.readOffset;
      while (start > 0 && this.decode(this.ids.slice(0, start)).endsWith(REPLACEMENT)) start--;
      this.nextWindowStart = start;
    }
  }

  /** All text emitted so far (push results and flush). */
  get text(): string {
    return this.emitted;
  }

  /** Feeds new token ids; returns the newly completed text (never half a UTF-8 character). */
  push(ids: readonly number[]): string {
    let out = "";
    // One id at a time, so that a batch ending in a partial character still releases the text before it.
    for (const id of ids) if (this.keep(id)) out += this.step(id);
    this.emitted += out;
    return out;
  }

  /** Returns the text still held back at the end of generation (invalid bytes come out as U+FFFD). */
  flush(): string {
    let out = "";
    if (this.ids.length > this.readOffset) {
      const full = this.decode(this.ids);
      const base = stripTrailingReplacement(this.prefixText);
      if (full.length > base.length) out = full.slice(base.length);
    }
    // What was flushed is final: start afresh.
    this.ids = [];
    this.readOffset = 0;
    this.nextWindowStart = 0;
    this.prefixText = "";
    this.emitted += out;
    return out;
  }

  private keep(id: number): boolean {
    return !(this.skipSpecial && this.tokenizer.specialTokenIds.has(id));
  }

  private decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids);
  }

  private step(id: number): string {
    this.ids.push(id);
    const full = this.decode(this.ids);
    if (full.endsWith(REPLACEMENT)) return "";
    // The prefix ends with U+FFFD only when the prompt ended mid-character; the new text completes that
    // character, which is then emitted as generated text.
    const base = stripTrailingReplacement(this.prefixText);
    if (full.length <= base.length) return "";
    const delta = full.slice(base.length);
    // New window: start at the old read offset, read up to here.
    this.ids = this.ids.slice(this.nextWindowStart);
    this.readOffset = this.ids.length;
    this.nextWindowStart = this.readOffset;
    this.prefixText = this.decode(this.ids);
    return delta;
  }
}
