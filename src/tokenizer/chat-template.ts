/**
 * Chat template rendering with @huggingface/jinja, set up the way transformers' `apply_chat_template` renders.
 */
import { Template } from "@huggingface/jinja";
import type { JsonObject, TokenizerFiles } from "./model-files.ts";

/** A chat message: OpenAI-style, content as a string or as a list of typed parts. Extra fields reach the template. */
export interface ChatMessageLike {
  role: string;
  content: string | { type: string; text?: string }[];
}

/** Raised for a template that does not parse, a `raise_exception(...)` in the template, or a message it cannot take. */
export class ChatTemplateError extends Error {
  override name = "ChatTemplateError";
}

/** Separator between the text parts of one message's content (vLLM's "string" content format joins with "\n"). */
export const TEXT_PART_SEPARATOR = "\n";

/** The chat template source of a model folder, in transformers' precedence order; null when there is none. */
export function selectChatTemplate(files: TokenizerFiles): string | null {
  if (files.chatTemplateFile !== null) return files.chatTemplateFile;
  const fromConfig = pickTemplate(files.tokenizerConfig.chat_template);
  if (fromConfig !== null) return fromConfig;
  return pickTemplate(files.chatTemplateJson?.chat_template);
}

// Older configs hold a list of named templates; transformers uses the one named "default".
function pickTemplate(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => (t as JsonObject)?.name === "default") as JsonObject | undefined;
    return typeof named?.template === "string" ? named.template : null;
  }
  return null;
}

function flattenContent(message: ChatMessageLike, index: number): unknown {
  const content = message.content as unknown;
  if (!Array.isArray(content)) return content;
  const texts: string[] = [];
  for (const part of content as { type?: unknown; text?: unknown }[]) {
    if (part?.type !== "text") {
      throw new ChatTemplateError(`messages[${index}]: unsupported content part type ${JSON.stringify(part?.type)}`);
    }
    texts.push(typeof part.text === "string" ? part.text : "");
  }
  return texts.join(TEXT_PART_SEPARATOR);
}

/** A parsed chat template plus the special-token variables transformers passes to it. */
export class ChatTemplate {
  private readonly template: Template | null;
  private readonly parseError: Error | null;

  /** `vars` are bos_token, eos_token, ... (only the ones the tokenizer defines, as transformers does). */
  constructor(
    readonly source: string,
    private readonly vars: Record<string, unknown>,
  ) {
    // A template the engine cannot parse should not stop the model from loading; it fails at use instead.
    try {
      this.template = new Template(source);
      this.parseError = null;
    } catch (err) {
      this.template = null;
      this.parseError = err as Error;
    }
  }

  /** Renders `messages`; throws ChatTemplateError on any template failure. */
  render(messages: readonly ChatMessageLike[], addGenerationPrompt: boolean): string {
    if (this.template === null) {
      throw new ChatTemplateError(`chat template does not parse: ${this.parseError?.message}`, {
        cause: this.parseError,
      });
    }
    const flat = messages.map((m, i) => ({ ...m, content: flattenContent(m, i) }));
    try {
      // raise_exception, strftime_now and range are globals of @huggingface/jinja already (passing them again
      // throws "Variable already declared"). tools/documents are None, as transformers passes them.
      return this.template.render({
        ...this.vars,
        messages: flat,
        tools: null,
        documents: null,
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (err) {
      throw new ChatTemplateError(`chat template error: ${(err as Error).message}`, { cause: err });
    }
  }
}
