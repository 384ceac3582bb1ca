/**
 * Shared helpers of the tokenizer tests: reference fixtures and a synthetic
 * SentencePiece-style (byte-fallback) model folder.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const TINY_LLAMA = join(ROOT, "models/tiny-llama");
export const REFS_DIR = join(ROOT, "test/fixtures/refs");

export interface TokenizerRefCase {
  text: string;
  ids: number[];
  decoded: string;
}

export interface ModelRefCase {
  name: string;
  prompt: string | null;
  messages: { role: string; content: string }[] | null;
  rendered: string;
  prompt_ids: number[];
  greedy_ids: number[];
  greedy_text: string;
}

export interface ModelRefFile {
  file: string;
  modelDir: string;
  cases: ModelRefCase[];
}

export function tokenizerRefCases(): TokenizerRefCase[] {
  return JSON.parse(readFileSync(join(REFS_DIR, "tokenizer.json"), "utf8")).cases;
}

/** Every test/fixtures/refs/*.json except tokenizer.json, with its model folder resolved. */
export function modelRefFiles(): ModelRefFile[] {
  return readdirSync(REFS_DIR)
    .filter((f) => f.endsWith(".json") && f !== "tokenizer.json")
    .sort()
    .map((file) => {
      const data = JSON.parse(readFileSync(join(REFS_DIR, file), "utf8"));
      const bundled = join(ROOT, "models", data.model_dir);
      const modelDir = existsSync(bundled) ? bundled : join(ROOT, "test/fixtures/models", data.model_dir);
      return { file, modelDir, cases: data.cases };
    });
}

/** Splits `ids` into consecutive chunks of random sizes (including empty ones). */
export function randomSplit<T>(ids: readonly T[], rand: () => number, maxChunk = 5): T[][] {
  const chunks: T[][] = [];
  let i = 0;
  while (i < ids.length) {
    const n = Math.floor(rand() * (maxChunk + 1));
    chunks.push(ids.slice(i, i + n));
    i += n;
  }
  return chunks;
}

const tempDirs: string[] = [];
process.on("exit", () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `loom-tok-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}

/** Writes each value as JSON (strings as-is) into `dir`. */
export function writeFiles(dir: string, files: Record<string, unknown>): string {
  for (const [name, value] of Object.entries(files)) {
    writeFileSync(join(dir, name), typeof value === "string" ? value : JSON.stringify(value));
  }
  return dir;
}

/**
 * A Llama/SentencePiece-style tokenizer: BPE with byte_fallback over a tiny vocabulary, `<0x00>`..`<0xFF>` pieces,
 * normalizer Prepend("▁") + Replace(" " → "▁"), decoder Replace("▁" → " "), ByteFallback, Fuse, Strip(1 leading space).
 * Ids: <unk>=0, <s>=1, </s>=2, <0xNN>=3+NN, then the word pieces.
 */
export function byteFallbackTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  const merges: [string, string][] = [
    ["▁", "h"],
    ["▁h", "e"],
    ["l", "l"],
    ["▁he", "ll"],
    ["▁hell", "o"],
    ["▁", "w"],
    ["o", "r"],
    ["▁w", "or"],
    ["▁wor", "l"],
    ["▁worl", "d"],
    ["c", "a"],
    ["ca", "f"],
  ];
  for (const piece of ["▁", "h", "e", "l", "o", "w", "r", "d", "c", "a", "f", "n", "i", "v"]) {
    vocab[piece] ??= Object.keys(vocab).length;
  }
  for (const [a, b] of merges) vocab[a + b] ??= Object.keys(vocab).length;
  const added = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/** Writes the byte-fallback model folder; `config` is merged into its tokenizer_config.json. */
export function byteFallbackModelDir(config: Record<string, unknown> = {}): string {
  return writeFiles(tempDir("bytefallback"), {
    "tokenizer.json": byteFallbackTokenizerJson(),
    "tokenizer_config.json": {
      bos_token: "<s>",
      eos_token: "</s>",
      unk_token: "<unk>",
      add_bos_token: true,
      add_eos_token: false,
      clean_up_tokenization_spaces: false,
      ...config,
    },
  });
}
