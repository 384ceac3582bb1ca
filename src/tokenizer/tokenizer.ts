/**
 * The model tokenizer: Hugging Face tokenizer.json through @huggingface/tokenizers (pure JS), plus the pieces
 * transformers adds on top (BOS/EOS policy from tokenizer_config, generation_config EOS ids, chat template).
 */
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { GgufFile, isGgufFile } from "../formats/gguf/reader.ts";
import { ggufTokenizerObjects } from "../formats/gguf/tokenizer-meta.ts";
import { ModelFileError } from "../formats/model-file-error.ts";
import { type ChatMessageLike, ChatTemplate, ChatTemplateError, selectChatTemplate } from "./chat-template.ts";
import { type JsonObject, readTokenizerFiles, type TokenizerFiles } from "./model-files.ts";
import { type AddedTokenDecl, configAddedTokens, resolveSpecialTokens, type SpecialTokens } from "./special-tokens.ts";

export type { ChatMessageLike } from "./chat-template.ts";
export { ChatTemplateError } from "./chat-template.ts";

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Apply the model's special-token policy (BOS/EOS as configured). Default true, like transformers. */
  addSpecialTokens?: boolean;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Drop ids in {@link Tokenizer.specialTokenIds} before decoding. Default false. */
  skipSpecialTokens?: boolean;
}

/** Encodes and decodes text for one model, and renders its chat template. */
export class Tokenizer {
  /** Size of the id space: highest vocab or added-token id + 1. */
  readonly vocabSize: number;
  /** Ids that end generation: generation_config eos ids first, then tokenizer_config eos_token; no duplicates. */
  readonly eosTokenIds: number[];
  /** The tokenizer's BOS id (tokenizer_config bos_token), or null when it has none. */
  readonly bosTokenId: number | null;
  /** Added tokens marked special plus the named special tokens (bos, eos, pad, unk, additional...). */
  readonly specialTokenIds: ReadonlySet<number>;
  /** Whether the model folder provides a chat template. */
  readonly hasChatTemplate: boolean;

  private readonly chatTemplate: ChatTemplate | null;
  private readonly vocab: readonly (string | undefined)[];
  private readonly cleanUpSpaces: boolean;
  /** What the tokenizer.json post-processor adds on its own, found by probing (see constructor). */
  private readonly postAddsBos: boolean;
  private readonly postAddsEos: boolean;

  private constructor(
    private readonly hf: HfTokenizer,
    private readonly special: SpecialTokens,
    files: TokenizerFiles,
  ) {
    this.vocab = hf.model?.vocab ?? [];
    this.vocabSize = this.vocab.length;
    this.eosTokenIds = special.eosTokenIds;
    this.bosTokenId = special.bosTokenId;
    this.specialTokenIds = special.specialTokenIds;
    // transformers' default became False; the JS library would default to true.
    this.cleanUpSpaces = files.tokenizerConfig.clean_up_tokenization_spaces === true;
    const source = selectChatTemplate(files);
    this.chatTemplate = source === null ? null : new ChatTemplate(source, special.templateVars);
    this.hasChatTemplate = this.chatTemplate !== null;

    // The tokenizer.json post-processor (e.g. TemplateProcessing) may add BOS/EOS; tokenizer_config's
    // add_bos_token/add_eos_token, when present, overrides it (transformers rebuilds the post-processor from them).
    const plain = hf.encode("a", { add_special_tokens: false }).ids;
    const full = hf.encode("a", { add_special_tokens: true }).ids;
    const bos = special.bosTokenId;
    const eos = special.tokenizerEosId;
    this.postAddsBos = bos !== null && full.length > plain.length && full[0] === bos;
    this.postAddsEos = eos !== null && full.length > plain.length && full.at(-1) === eos && plain.at(-1) !== eos;
  }

  /**
   * Loads the tokenizer of a Hugging Face model folder (tokenizer.json required; tokenizer_config.json,
   * generation_config.json, special_tokens_map.json, chat_template.jinja optional), or of a `.gguf` file
   * (built from its tokenizer.ggml.* metadata, see formats/gguf/tokenizer-meta.ts).
   * Throws an Error naming the file when tokenizer.json is missing or invalid.
   */
  static async load(modelDir: string): Promise<Tokenizer> {
    if (isGgufFile(modelDir)) return Tokenizer.fromGguf(modelDir);
    const files = await readTokenizerFiles(modelDir);
    return Tokenizer.#build(files, join(modelDir, "tokenizer.json"));
  }

  /**
   * A tokenizer from the contents of tokenizer.json, tokenizer_config.json and generation_config.json
   * (the latter two may be empty objects / null). `source` names where they came from in error messages.
   */
  static fromObjects(
    tokenizerJson: JsonObject,
    tokenizerConfig: JsonObject = {},
    generationConfig: JsonObject | null = null,
    source = "<tokenizer objects>",
  ): Tokenizer {
    const files: TokenizerFiles = {
      dir: source,
      tokenizerJson,
      tokenizerConfig,
      generationConfig,
      modelConfig: null,
      specialTokensMap: null,
      chatTemplateFile: null,
      chatTemplateJson: null,
    };
    return Tokenizer.#build(files, source);
  }

  /** The tokenizer stored in a GGUF file's metadata. Throws ModelFileError for a bad file. */
  static fromGguf(path: string): Tokenizer {
    const file = GgufFile.open(path);
    try {
      return Tokenizer.fromGgufFile(file);
    } finally {
      file.close();
    }
  }

  /** The tokenizer of an open GGUF file; any problem with its tokenizer metadata is a ModelFileError. */
  static fromGgufFile(
    file: GgufFile,
    log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  ): Tokenizer {
    const objs = ggufTokenizerObjects(file, log);
    try {
      return Tokenizer.fromObjects(objs.tokenizerJson, objs.tokenizerConfig, objs.generationConfig, file.path);
    } catch (e) {
      throw new ModelFileError(`${file.path}: ${(e as Error).message.split("\n")[0]}`, file.path);
    }
  }

  static #build(files: TokenizerFiles, tokenizerPath: string): Tokenizer {
    const addedTokens = mergeAddedTokens(files);
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer({ ...files.tokenizerJson, added_tokens: addedTokens }, libraryConfig(files.tokenizerConfig));
    } catch (err) {
      throw new Error(`invalid tokenizer ${tokenizerPath}: ${(err as Error).message}`, { cause: err });
    }
    const special = resolveSpecialTokens(files, (t) => hf.token_to_id(t), addedTokens);
    return new Tokenizer(hf, special, files);
  }

  /**
   * Text → ids, as transformers' `tokenizer(text)["input_ids"]`: special tokens written in the text are
   * recognized; BOS (and EOS) are added only when the model's config says so and addSpecialTokens is true.
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const addSpecial = opts.addSpecialTokens ?? true;
    let ids = this.hf.encode(text, { add_special_tokens: addSpecial }).ids;
    if (!addSpecial) return ids;
    const { addBos, addEos, bosTokenId } = this.special;
    if (addBos === false && this.postAddsBos) ids = ids.slice(1);
    else if (addBos === true && !this.postAddsBos && bosTokenId !== null) ids = [bosTokenId, ...ids];
    const eos = this.special.tokenizerEosId;
    if (addEos === false && this.postAddsEos) ids = ids.slice(0, -1);
    else if (addEos === true && !this.postAddsEos && eos !== null) ids = [...ids, eos];
    return ids;
  }

  /** Ids → text. Ids outside the vocabulary are dropped (as the Rust tokenizers do). */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecialTokens ?? false;
    const kept = ids.filter((id) => this.vocab[id] !== undefined && !(skip && this.specialTokenIds.has(id)));
    // The library throws on an empty array.
    if (kept.length === 0) return "";
    return this.hf.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  /** The raw vocabulary piece of `id` (e.g. "Ġworld", "<0xE2>"); "" for an id outside the vocabulary. */
  tokenText(id: number): string {
    return this.vocab[id] ?? "";
  }

  /**
   * Renders `messages` with the model's chat template exactly as transformers does (bos_token, eos_token, ...
   * and raise_exception available to the template). Text-part content is joined with "\n".
   * Throws ChatTemplateError when there is no template or the template fails.
   */
  applyChatTemplate(messages: ChatMessageLike[], opts: { addGenerationPrompt?: boolean } = {}): string {
    if (this.chatTemplate === null) throw new ChatTemplateError("this model has no chat template");
    return this.chatTemplate.render(messages, opts.addGenerationPrompt ?? false);
  }
}

// transformers adds tokenizer_config's added_tokens_decoder entries that tokenizer.json lacks.
function mergeAddedTokens(files: TokenizerFiles): AddedTokenDecl[] {
  const raw = files.tokenizerJson.added_tokens;
  const own = (Array.isArray(raw) ? raw : []) as AddedTokenDecl[];
  const ids = new Set(own.map((t) => t.id));
  return [...own, ...configAddedTokens(files.tokenizerConfig).filter((t) => !ids.has(t.id))];
}

// The library reads a few string fields (eos_token for Unigram, etc.) and expects plain strings there.
function libraryConfig(cfg: JsonObject): JsonObject {
  const out: JsonObject = { ...cfg };
  for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
    const v = out[key];
    if (v !== null && typeof v === "object") out[key] = (v as JsonObject).content ?? null;
  }
  return out;
}
