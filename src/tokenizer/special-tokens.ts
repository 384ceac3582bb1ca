/**
 * Resolution of BOS/EOS and the other special tokens from the several places Hugging Face folders declare them.
 */
import type { JsonObject, TokenizerFiles } from "./model-files.ts";

/** Names transformers exposes to chat templates (its `special_tokens_map`). */
const NAMED_SPECIAL_TOKENS = [
  "bos_token",
  "eos_token",
  "unk_token",
  "pad_token",
  "sep_token",
  "cls_token",
  "mask_token",
] as const;

/** An added token as declared in tokenizer.json `added_tokens` or tokenizer_config `added_tokens_decoder`. */
export interface AddedTokenDecl {
  id: number;
  content: string;
  special: boolean;
  [key: string]: unknown;
}

/** What the tokenizer needs to know about special tokens. */
export interface SpecialTokens {
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** The tokenizer's own eos_token id (what add_eos_token appends). */
  tokenizerEosId: number | null;
  specialTokenIds: Set<number>;
  /** Values passed to chat templates: bos_token, eos_token, ..., additional_special_tokens (only those that are set). */
  templateVars: Record<string, string | string[]>;
  /** tokenizer_config add_bos_token / add_eos_token; null when the config does not say. */
  addBos: boolean | null;
  addEos: boolean | null;
}

/** A token given as a plain string or as an AddedToken dict (`{ content: "..." }`); null otherwise. */
export function tokenContent(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as JsonObject).content === "string") {
    return (value as JsonObject).content as string;
  }
  return null;
}

/** Added tokens of tokenizer_config.json's `added_tokens_decoder` (id → AddedToken dict). */
export function configAddedTokens(tokenizerConfig: JsonObject): AddedTokenDecl[] {
  const decoder = tokenizerConfig.added_tokens_decoder;
  if (decoder === null || typeof decoder !== "object") return [];
  const out: AddedTokenDecl[] = [];
  for (const [id, value] of Object.entries(decoder as JsonObject)) {
    const content = tokenContent(value);
    if (content === null || !Number.isInteger(Number(id))) continue;
    out.push({ ...(value as JsonObject), id: Number(id), content, special: (value as JsonObject).special === true });
  }
  return out;
}

function idList(value: unknown): number[] {
  if (typeof value === "number" && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === "number" && Number.isInteger(v));
  return [];
}

/**
 * Works out BOS/EOS/special ids. `tokenToId` maps a token string to its id (including added tokens);
 * `addedTokens` are all added tokens known to the tokenizer.
 */
export function resolveSpecialTokens(
  files: TokenizerFiles,
  tokenToId: (token: string) => number | undefined,
  addedTokens: readonly AddedTokenDecl[],
): SpecialTokens {
  const cfg = files.tokenizerConfig;
  const map = files.specialTokensMap ?? {};
  // tokenizer_config wins; special_tokens_map.json fills in what it does not mention (as transformers does).
  const named = (name: string): string | null => (name in cfg ? tokenContent(cfg[name]) : tokenContent(map[name]));

  const templateVars: Record<string, string | string[]> = {};
  const specialTokenIds = new Set<number>();
  for (const t of addedTokens) if (t.special) specialTokenIds.add(t.id);
  for (const name of NAMED_SPECIAL_TOKENS) {
    const content = named(name);
    if (content === null) continue;
    templateVars[name] = content;
    const id = tokenToId(content);
    if (id !== undefined) specialTokenIds.add(id);
  }
  const extra = cfg.additional_special_tokens ?? map.additional_special_tokens;
  if (Array.isArray(extra)) {
    const contents = extra.map(tokenContent).filter((c): c is string => c !== null);
    templateVars.additional_special_tokens = contents;
    for (const c of contents) {
      const id = tokenToId(c);
      if (id !== undefined) specialTokenIds.add(id);
    }
  }

  const bosContent = named("bos_token");
  const bosTokenId = bosContent === null ? null : (tokenToId(bosContent) ?? null);

  // generation_config is what generation stops on; transformers derives it from config.json when absent.
  const eosTokenIds: number[] = [];
  const genEos = files.generationConfig ? files.generationConfig.eos_token_id : files.modelConfig?.eos_token_id;
  for (const id of idList(genEos)) if (!eosTokenIds.includes(id)) eosTokenIds.push(id);
  const eosContent = named("eos_token");
  const eosId = eosContent === null ? undefined : tokenToId(eosContent);
  if (eosId !== undefined && !eosTokenIds.includes(eosId)) eosTokenIds.push(eosId);

  return {
    bosTokenId,
    eosTokenIds,
    tokenizerEosId: eosId ?? null,
    specialTokenIds,
    templateVars,
    addBos: typeof cfg.add_bos_token === "boolean" ? cfg.add_bos_token : null,
    addEos: typeof cfg.add_eos_token === "boolean" ? cfg.add_eos_token : null,
  };
}
