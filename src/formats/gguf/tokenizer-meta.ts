/**
 * Tokenizers in GGUF metadata (tokenizer.ggml.*) ↔ Hugging Face tokenizer.json objects.
 *
 *   tokenizer.ggml.model        "gpt2": byte-level BPE (tokens are byte-level strings like "Ġthe")
 *                               "llama": SentencePiece BPE with byte fallback (pieces like "▁the", "<0x0A>")
 *   tokenizer.ggml.pre          gpt2 only: the pre-tokenizer regex family ("gpt-2", "llama-bpe", "qwen2", …)
 *   tokenizer.ggml.tokens       string[n]: the vocabulary in id order
 *   tokenizer.ggml.token_type   i32[n]: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
 *   tokenizer.ggml.scores       f32[n]: SentencePiece piece scores (higher merges first)
 *   tokenizer.ggml.merges       string[m]: gpt2 merges "left right", in rank order
 *   tokenizer.ggml.{bos,eos,unknown,padding,eot,eom}_token_id, add_bos_token, add_eos_token,
 *   tokenizer.ggml.add_space_prefix (llama), tokenizer.chat_template
 *
 * Import builds what transformers' converters would have written: for gpt2 a BPE model with a ByteLevel
 * pre-tokenizer (or the Split regex of the `pre` family) and decoder; for llama a BPE model with
 * byte_fallback, merges derived from the scores exactly as transformers' SentencePieceExtractor does, the
 * Prepend("▁")/Replace(" "→"▁") normalizer and the Replace/ByteFallback/Fuse/Strip decoder. Control and
 * user-defined tokens become added tokens (special / not special). End-of-generation ids follow llama.cpp:
 * eos, eot, eom, then the tokens whose text llama.cpp treats as end-of-generation.
 */
import { ModelFileError } from "../model-file-error.ts";
import { type GgufFile, show } from "./reader.ts";
import { TokenType } from "./types.ts";
import type { GgufWriter } from "./writer.ts";

type Json = Record<string, unknown>;

/** Token texts llama.cpp treats as end-of-generation (llama-vocab.cpp). */
const EOG_TEXTS = new Set([
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<|return|>",
  "<|call|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "</s>",
  "<|eom_id|>",
  "<EOT>",
  "_<EOT>",
  "<|end_of_text|>",
  "<end_of_utterance>",
]);

export const GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
export const LLAMA3_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const QWEN2_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const byteLevel = (useRegex: boolean) => ({
  type: "ByteLevel",
  add_prefix_space: false,
  trim_offsets: true,
  use_regex: useRegex,
});
const splitThenBytes = (regex: string) => ({
  type: "Sequence",
  pretokenizers: [{ type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false }, byteLevel(false)],
});

/** tokenizer.ggml.pre → the HF pre_tokenizer (the families whose regex we know). */
const PRE_TOKENIZERS: Record<string, () => Json> = {
  "gpt-2": () => byteLevel(true),
  default: () => byteLevel(true),
  "llama-bpe": () => splitThenBytes(LLAMA3_REGEX),
  llama3: () => splitThenBytes(LLAMA3_REGEX),
  "llama-v3": () => splitThenBytes(LLAMA3_REGEX),
  qwen2: () => splitThenBytes(QWEN2_REGEX),
  "deepseek-r1-qwen": () => splitThenBytes(QWEN2_REGEX),
  smollm: () => ({ type: "Sequence", pretokenizers: [{ type: "Digits", individual_digits: true }, byteLevel(true)] }),
};
/** llama.cpp adds BOS by default for these `pre` types. */
const PRE_ADDS_BOS = new Set(["llama-bpe", "llama3", "llama-v3"]);

export interface GgufSpecialTokens {
  bos: number | null;
  eos: number | null;
  unk: number | null;
  pad: number | null;
  /** End-of-generation ids, eos first. */
  eog: number[];
}

function tokensOf(file: GgufFile): string[] {
  const tokens = file.stringArray("tokenizer.ggml.tokens");
  if (tokens === undefined)
    throw new ModelFileError(`${file.path}: metadata "tokenizer.ggml.tokens" is missing`, file.path);
  return tokens;
}

function typesOf(file: GgufFile, n: number): ArrayLike<number> | null {
  const types = file.numberArray("tokenizer.ggml.token_type") ?? null;
  if (types !== null && types.length < n) {
    throw new ModelFileError(
      `${file.path}: tokenizer.ggml.token_type has ${types.length} entries for ${n} tokens`,
      file.path,
    );
  }
  return types;
}

/** Special token ids (absent or out-of-range ids are null) and the end-of-generation set. */
export function ggufSpecialTokens(file: GgufFile): GgufSpecialTokens {
  const tokens = file.get("tokenizer.ggml.tokens") ? tokensOf(file) : [];
  const n = tokens.length;
  const id = (name: string): number | null => {
    const v = file.uint(`tokenizer.ggml.${name}_token_id`);
    return v !== undefined && v < n ? v : null;
  };
  const spm = file.string("tokenizer.ggml.model") === "llama";
  const has = (k: string) => file.get(`tokenizer.ggml.${k}_token_id`) !== undefined;
  // llama.cpp's defaults for SentencePiece vocabularies when the keys are absent.
  const bos = id("bos") ?? (spm && !has("bos") && n > 1 ? 1 : null);
  const eos = id("eos") ?? (spm && !has("eos") && n > 2 ? 2 : null);
  const unk = id("unknown") ?? (spm && !has("unknown") && n > 0 ? 0 : null);
  const eog: number[] = [];
  const add = (v: number | null) => {
    if (v !== null && !eog.includes(v)) eog.push(v);
  };
  add(eos);
  add(id("eot"));
  add(id("eom"));
  for (let i = 0; i < n; i++) if (EOG_TEXTS.has(tokens[i])) add(i);
  return { bos, eos, unk, pad: id("padding"), eog };
}

export interface TokenizerObjects {
  tokenizerJson: Json;
  tokenizerConfig: Json;
  generationConfig: Json;
}

/** Builds tokenizer.json, tokenizer_config.json and generation_config.json objects from GGUF metadata. */
export function ggufTokenizerObjects(file: GgufFile, log: (line: string) => void = () => {}): TokenizerObjects {
  const bad = (msg: string) => new ModelFileError(`${file.path}: ${msg}`, file.path);
  const model = file.string("tokenizer.ggml.model");
  if (model === undefined) throw bad(`metadata "tokenizer.ggml.model" is missing (the file holds no tokenizer)`);
  if (model !== "gpt2" && model !== "llama") {
    throw bad(`tokenizer model ${show(model)} is not supported (gpt2 and llama are)`);
  }
  const tokens = tokensOf(file);
  const types = typesOf(file, tokens.length);
  const vocab: Record<string, number> = Object.create(null);
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] in vocab)
      throw bad(`duplicate token ${JSON.stringify(tokens[i])} (ids ${vocab[tokens[i]]} and ${i})`);
    vocab[tokens[i]] = i;
  }
  const special = ggufSpecialTokens(file);
  const addedTokens: Json[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = types ? types[i] : TokenType.NORMAL;
    const isSpecial = t === TokenType.CONTROL || (model === "llama" && t === TokenType.UNKNOWN);
    if (!isSpecial && t !== TokenType.USER_DEFINED) continue;
    addedTokens.push({
      id: i,
      content: tokens[i],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: !isSpecial && model === "llama",
      special: isSpecial,
    });
  }

  let tokenizerJson: Json;
  let addBosDefault: boolean;
  if (model === "gpt2") {
    const rawMerges = file.stringArray("tokenizer.ggml.merges");
    if (rawMerges === undefined)
      throw bad(`metadata "tokenizer.ggml.merges" is missing (required for gpt2 tokenizers)`);
    const merges = rawMerges.map((m, i) => {
      const at = m.indexOf(" ", 1);
      if (at < 0) throw bad(`tokenizer.ggml.merges[${i}] ${JSON.stringify(m)} is not "left right"`);
      const pair = [m.slice(0, at), m.slice(at + 1)];
      if (!(pair[0] in vocab && pair[1] in vocab && pair[0] + pair[1] in vocab)) {
        throw bad(`tokenizer.ggml.merges[${i}] ${JSON.stringify(m)} merges tokens that are not in the vocabulary`);
      }
      return pair;
    });
    const pre = file.string("tokenizer.ggml.pre") ?? "default";
    const preTokenizer = PRE_TOKENIZERS[pre];
    if (!preTokenizer) log(`loom: GGUF pre-tokenizer ${show(pre)} is not known here; using the GPT-2 regex`);
    addBosDefault = PRE_ADDS_BOS.has(pre);
    tokenizerJson = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: (preTokenizer ?? PRE_TOKENIZERS["gpt-2"])(),
      post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: PRE_ADDS_BOS.has(pre),
        vocab,
        merges,
      },
    };
  } else {
    const scores = file.numberArray("tokenizer.ggml.scores");
    if (scores !== undefined && scores.length < tokens.length) {
      throw bad(`tokenizer.ggml.scores has ${scores.length} entries for ${tokens.length} tokens`);
    }
    const addSpacePrefix = file.bool("tokenizer.ggml.add_space_prefix") ?? true;
    addBosDefault = true;
    const replace = { type: "Replace", pattern: { String: " " }, content: "▁" };
    tokenizerJson = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: addSpacePrefix
        ? { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, replace] }
        : replace,
      pre_tokenizer: null,
      post_processor: null,
      decoder: {
        type: "Sequence",
        decoders: [
          { type: "Replace", pattern: { String: "▁" }, content: " " },
          { type: "ByteFallback" },
          { type: "Fuse" },
          ...(addSpacePrefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
        ],
      },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: special.unk !== null ? tokens[special.unk] : null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: true,
        ignore_merges: false,
        vocab,
        merges: mergesFromScores(tokens, scores ?? null, vocab),
      },
    };
  }
  const text = (v: number | null) => (v === null ? null : tokens[v]);
  const tokenizerConfig: Json = {
    bos_token: text(special.bos),
    eos_token: text(special.eos),
    unk_token: text(special.unk),
    pad_token: text(special.pad),
    add_bos_token: (file.bool("tokenizer.ggml.add_bos_token") ?? addBosDefault) && special.bos !== null,
    add_eos_token: (file.bool("tokenizer.ggml.add_eos_token") ?? false) && special.eos !== null,
    clean_up_tokenization_spaces: false,
  };
  const template = file.string("tokenizer.chat_template");
  if (template !== undefined) tokenizerConfig.chat_template = template;
  const generationConfig: Json = { eos_token_id: special.eog };
  if (special.bos !== null) generationConfig.bos_token_id = special.bos;
  return { tokenizerJson, tokenizerConfig, generationConfig };
}

/**
 * BPE merges equivalent to SentencePiece scores, as transformers' SentencePieceExtractor derives them:
 * every split of every piece into two vocabulary pieces, ordered by the piece's score (highest first),
 * ties by the ids of the two halves.
 */
export function mergesFromScores(
  tokens: readonly string[],
  scores: ArrayLike<number> | null,
  vocab: Record<string, number>,
): [string, string][] {
  const found: { l: string; r: string; score: number; li: number; ri: number; order: number }[] = [];
  for (let id = 0; id < tokens.length; id++) {
    const chars = Array.from(tokens[id]);
    if (chars.length < 2) continue;
    const score = scores ? scores[id] : -id;
    const local: typeof found = [];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join("");
      const r = chars.slice(k).join("");
      if (l in vocab && r in vocab) local.push({ l, r, score, li: vocab[l], ri: vocab[r], order: 0 });
    }
    local.sort((a, b) => a.li - b.li || a.ri - b.ri);
    for (const m of local) found.push({ ...m, order: found.length });
  }
  found.sort((a, b) => b.score - a.score || a.order - b.order);
  return found.map((m) => [m.l, m.r]);
}

// ------------------------------------------------------------------------------------------------
// Export: HF tokenizer files → tokenizer.ggml.* metadata.

export interface HfTokenizerFiles {
  tokenizerJson: Json;
  tokenizerConfig: Json;
  generationConfig: Json | null;
  /** config.json, for bos/eos ids the tokenizer files do not name. */
  modelConfig: Json;
  chatTemplate: string | null;
}

const tokenContent = (v: unknown): string | null =>
  typeof v === "string"
    ? v
    : v && typeof v === "object" && typeof (v as Json).content === "string"
      ? ((v as Json).content as string)
      : null;

/** The llama.cpp `pre` name of an HF byte-level pre-tokenizer, or null when it is not one we recognise. */
export function preTokenizerName(pre: unknown): string | null {
  const p = (pre ?? null) as Json | null;
  if (p === null) return null;
  if (p.type === "ByteLevel") return p.use_regex === false ? null : "gpt-2";
  if (p.type !== "Sequence" || !Array.isArray(p.pretokenizers)) return null;
  const parts = p.pretokenizers as Json[];
  if (parts.length === 2 && parts[0].type === "Split" && parts[1].type === "ByteLevel") {
    const regex = (parts[0].pattern as Json | undefined)?.Regex;
    if (regex === LLAMA3_REGEX) return "llama-bpe";
    if (regex === QWEN2_REGEX) return "qwen2";
  }
  if (
    parts.length === 2 &&
    parts[0].type === "Digits" &&
    parts[0].individual_digits === true &&
    parts[1].type === "ByteLevel"
  ) {
    return "smollm";
  }
  return null;
}

/**
 * Writes tokenizer.ggml.* for an HF tokenizer: byte-level BPE as "gpt2", byte-fallback BPE as "llama"
 * (SentencePiece). The vocabulary is padded with "[PADn]" (unused) tokens up to `vocabSize` (the embedding
 * rows), as llama.cpp's converter does. Throws for other tokenizer models.
 */
export function writeTokenizerMetadata(
  w: GgufWriter,
  files: HfTokenizerFiles,
  vocabSize: number,
  log: (line: string) => void,
): void {
  const tj = files.tokenizerJson;
  const model = (tj.model ?? {}) as Json;
  if (model.type !== "BPE") throw new Error(`cannot export tokenizer model "${String(model.type)}" to GGUF (BPE only)`);
  const spm = model.byte_fallback === true;
  const tokens: (string | undefined)[] = new Array(vocabSize);
  const types = new Int32Array(vocabSize).fill(TokenType.NORMAL);
  const vocab = (model.vocab ?? {}) as Record<string, number>;
  for (const [tok, id] of Object.entries(vocab)) {
    if (!Number.isInteger(id) || id < 0) continue;
    if (id >= vocabSize)
      throw new Error(`token ${JSON.stringify(tok)} has id ${id} ≥ the model's vocab size ${vocabSize}`);
    tokens[id] = tok;
  }
  const added = Array.isArray(tj.added_tokens) ? (tj.added_tokens as Json[]) : [];
  for (const t of added) {
    const id = t.id as number;
    if (!Number.isInteger(id) || id < 0) continue;
    if (id >= vocabSize)
      throw new Error(`added token ${JSON.stringify(t.content)} has id ${id} ≥ the vocab size ${vocabSize}`);
    tokens[id] = String(t.content);
    types[id] = t.special === true ? TokenType.CONTROL : TokenType.USER_DEFINED;
  }
  const unk = spm && typeof model.unk_token === "string" ? vocab[model.unk_token] : undefined;
  let padded = 0;
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TokenType.UNUSED;
      padded++;
    } else if (spm && /^<0x[0-9A-F]{2}>$/.test(tokens[i] as string)) {
      types[i] = TokenType.BYTE;
    }
  }
  if (unk !== undefined) types[unk] = TokenType.UNKNOWN;
  if (padded > 0)
    log(`loom: tokenizer has ${vocabSize - padded} tokens; padded to the model's ${vocabSize} with [PADn]`);

  const rawMerges = Array.isArray(model.merges) ? (model.merges as unknown[]) : [];
  const merges = rawMerges.map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : String(m)));
  if (spm) {
    w.string("tokenizer.ggml.model", "llama");
    w.string("tokenizer.ggml.pre", "default");
    w.stringArray("tokenizer.ggml.tokens", tokens as string[]);
    // Score = −(rank of the merge that makes the piece): SentencePiece merges the highest-scoring pair first.
    const scores = new Float32Array(vocabSize).fill(0);
    const seen = new Set<string>();
    merges.forEach((m, rank) => {
      const at = m.indexOf(" ", 1);
      const piece = m.slice(0, at) + m.slice(at + 1);
      const id = vocab[piece];
      if (id !== undefined && !seen.has(piece)) {
        seen.add(piece);
        scores[id] = -rank;
      }
    });
    for (let i = 0; i < vocabSize; i++) {
      if (
        types[i] === TokenType.NORMAL &&
        !seen.has(tokens[i] as string) &&
        Array.from(tokens[i] as string).length > 1
      ) {
        scores[i] = -1e9;
      }
    }
    w.f32Array("tokenizer.ggml.scores", scores);
    w.i32Array("tokenizer.ggml.token_type", types);
    const normalizer = JSON.stringify(tj.normalizer ?? null);
    w.bool("tokenizer.ggml.add_space_prefix", normalizer.includes('"Prepend"'));
  } else {
    const pre = preTokenizerName(tj.pre_tokenizer);
    if (pre === null) log('loom: pre-tokenizer not recognised; writing tokenizer.ggml.pre = "default"');
    w.string("tokenizer.ggml.model", "gpt2");
    w.string("tokenizer.ggml.pre", pre ?? "default");
    w.stringArray("tokenizer.ggml.tokens", tokens as string[]);
    w.i32Array("tokenizer.ggml.token_type", types);
    w.stringArray("tokenizer.ggml.merges", merges);
  }

  // Special tokens: tokenizer_config names them; config.json ids fill gaps (as gguf-py's SpecialVocab does).
  const cfg = files.tokenizerConfig;
  const idOf = (name: string): number | null => {
    const content = tokenContent(cfg[name]);
    if (content === null) return null;
    const i = tokens.indexOf(content);
    return i >= 0 ? i : null;
  };
  const fromConfig = (key: string): number | null => {
    const v = files.modelConfig[key];
    const first = Array.isArray(v) ? v[0] : v;
    return typeof first === "number" && Number.isInteger(first) && first >= 0 && first < vocabSize ? first : null;
  };
  const bos = idOf("bos_token") ?? fromConfig("bos_token_id");
  const eos = idOf("eos_token") ?? fromConfig("eos_token_id");
  const pad = idOf("pad_token") ?? fromConfig("pad_token_id");
  const unkId = idOf("unk_token") ?? unk ?? null;
  if (bos !== null) w.u32("tokenizer.ggml.bos_token_id", bos);
  if (eos !== null) w.u32("tokenizer.ggml.eos_token_id", eos);
  if (unkId !== null) w.u32("tokenizer.ggml.unknown_token_id", unkId);
  if (pad !== null) w.u32("tokenizer.ggml.padding_token_id", pad);
  const addBos = typeof cfg.add_bos_token === "boolean" ? cfg.add_bos_token : postProcessorAddsBos(tj);
  w.bool("tokenizer.ggml.add_bos_token", addBos && bos !== null);
  w.bool("tokenizer.ggml.add_eos_token", cfg.add_eos_token === true && eos !== null);
  if (files.chatTemplate !== null) w.string("tokenizer.chat_template", files.chatTemplate);
}

function postProcessorAddsBos(tj: Json): boolean {
  const post = (tj.post_processor ?? null) as Json | null;
  if (!post) return false;
  const single = JSON.stringify(post.single ?? post.processors ?? []);
  return single.startsWith('[{"SpecialToken"') || single.includes('"TemplateProcessing"');
}
