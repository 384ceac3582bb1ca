/**
 * Reading the tokenizer-related JSON files of a Hugging Face model folder, with errors that name the file.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** A JSON object as read from disk. */
export type JsonObject = Record<string, unknown>;

/** The files of a model folder that the tokenizer needs (optional ones are `null` when absent). */
export interface TokenizerFiles {
  dir: string;
  /** tokenizer.json (required). */
  tokenizerJson: JsonObject;
  /** tokenizer_config.json ({} when absent). */
  tokenizerConfig: JsonObject;
  generationConfig: JsonObject | null;
  /** config.json (only consulted for eos ids when generation_config.json is absent). */
  modelConfig: JsonObject | null;
  specialTokensMap: JsonObject | null;
  /** chat_template.jinja, which transformers prefers over tokenizer_config's chat_template. */
  chatTemplateFile: string | null;
  /** chat_template.json's `chat_template` (older processor format). */
  chatTemplateJson: JsonObject | null;
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function parseObject(text: string, path: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`invalid JSON in ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`invalid ${path}: expected a JSON object`);
  }
  return value as JsonObject;
}

async function readOptionalJson(path: string): Promise<JsonObject | null> {
  const text = await readText(path);
  return text === null ? null : parseObject(text, path);
}

/** Reads the tokenizer files of `dir`; throws an Error naming the file when tokenizer.json is missing or invalid. */
export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const tokenizerPath = join(dir, "tokenizer.json");
  const tokenizerText = await readText(tokenizerPath);
  if (tokenizerText === null) {
    throw new Error(`tokenizer file not found: ${tokenizerPath} (is ${dir} a Hugging Face model folder?)`);
  }
  const [tokenizerConfig, generationConfig, modelConfig, specialTokensMap, chatTemplateFile, chatTemplateJson] =
    await Promise.all([
      readOptionalJson(join(dir, "tokenizer_config.json")),
      readOptionalJson(join(dir, "generation_config.json")),
      readOptionalJson(join(dir, "config.json")),
      readOptionalJson(join(dir, "special_tokens_map.json")),
      readText(join(dir, "chat_template.jinja")),
      readOptionalJson(join(dir, "chat_template.json")),
    ]);
  return {
    dir,
    tokenizerJson: parseObject(tokenizerText, tokenizerPath),
    tokenizerConfig: tokenizerConfig ?? {},
    generationConfig,
    modelConfig,
    specialTokensMap,
    chatTemplateFile,
    chatTemplateJson,
  };
}
