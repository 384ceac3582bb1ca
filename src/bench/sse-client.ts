/**
 * A streaming OpenAI client for the benchmark: sends one /v1/completions or /v1/chat/completions request with
 * `stream: true` and `stream_options.include_usage`, and timestamps every server-sent event that carries
 * generated text as its bytes arrive (node:http, no SDK in between).
 */
import http from "node:http";
import https from "node:https";
import type { RequestSpec, StreamResult } from "./types.ts";

/** Incremental parser of a text/event-stream body: push decoded text, get the complete events' data. */
export class SseParser {
  #buf = "";

  /** Returns the `data` of every event completed by `chunk` (multi-line data joined by "\n"). */
  push(chunk: string): string[] {
    this.#buf += chunk;
    const out: string[] = [];
    for (;;) {
      const m = /\r\n\r\n|\n\n|\r\r/.exec(this.#buf);
      if (!m) break;
      const block = this.#buf.slice(0, m.index);
      this.#buf = this.#buf.slice(m.index + m[0].length);
      const data = SseParser.dataOf(block);
      if (data !== null) out.push(data);
    }
    return out;
  }

  /** The data of a last event not followed by a blank line (call at the end of the body). */
  flush(): string[] {
    const rest = this.#buf;
    this.#buf = "";
    const data = rest.trim() ? SseParser.dataOf(rest) : null;
    return data === null ? [] : [data];
  }

  static dataOf(block: string): string | null {
    const lines: string[] = [];
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line.startsWith(":")) continue; // comment / keep-alive
      if (line === "data") lines.push("");
      else if (line.startsWith("data:")) lines.push(line.slice(line[5] === " " ? 6 : 5));
    }
    return lines.length ? lines.join("\n") : null;
  }
}

export interface ClientOptions {
  baseUrl: string;
  model?: string;
  apiKey?: string;
  agent?: http.Agent;
  /** Per-request limit in ms. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** The run's clock in ms (default performance.now). */
  clock?: () => number;
}

/** The JSON body for `spec` (streaming, with usage). */
export function requestBody(spec: RequestSpec, model: string | undefined): Record<string, unknown> {
  const common = {
    ...(model !== undefined ? { model } : {}),
    stream: true,
    stream_options: { include_usage: true },
    temperature: 0,
    ...(spec.ignoreEos ? { ignore_eos: true } : {}),
    ...spec.extra,
  };
  if (spec.endpoint === "chat") {
    return { ...common, messages: spec.messages, max_completion_tokens: spec.maxTokens };
  }
  return { ...common, prompt: spec.prompt, max_tokens: spec.maxTokens };
}

export function endpointPath(spec: RequestSpec): string {
  return spec.endpoint === "chat" ? "/v1/chat/completions" : "/v1/completions";
}

interface Chunk {
  error?: { message?: string } | string;
  choices?: { text?: string; delta?: { content?: string | null }; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } };
}

/**
 * `path` (e.g. "/v1/completions") under the server's base URL. A base path prefix (http://host/prefix) is
 * kept; a trailing "/v1" is dropped so that both http://host:8000 and http://host:8000/v1 work.
 */
export function apiUrl(baseUrl: string, path: string): URL {
  const base = new URL(baseUrl);
  const prefix = base.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
  return new URL(base.origin + prefix + path);
}

/** Sends `spec` and follows its stream to the end; never throws (failures come back as ok: false). */
export function streamRequest(spec: RequestSpec, opts: ClientOptions): Promise<StreamResult> {
  const clock = opts.clock ?? (() => performance.now());
  const url = apiUrl(opts.baseUrl, endpointPath(spec));
  const payload = JSON.stringify(requestBody(spec, opts.model));
  const result: StreamResult = { ok: false, status: 0, start: clock(), chunkTimes: [], end: 0, text: "" };

  return new Promise<StreamResult>((resolve) => {
    let settled = false;
    let sawDone = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      result.end = clock();
      if (error !== undefined) {
        result.ok = false;
        result.error = error;
      } else if (!sawDone && result.finishReason === undefined) {
        result.ok = false;
        result.error = "the stream ended before [DONE]";
      } else {
        result.ok = true;
      }
      resolve(result);
    };
    const transport = url.protocol === "https:" ? https : http;
    const headers: Record<string, string | number> = {
      "content-type": "application/json",
      accept: "text/event-stream",
      "content-length": Buffer.byteLength(payload),
    };
    if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
    const req = transport.request(url, { method: "POST", headers, agent: opts.agent });
    const timer = setTimeout(() => {
      finish(`timed out after ${opts.timeoutMs} ms`);
      req.destroy();
    }, opts.timeoutMs);
    const onAbort = () => {
      finish("aborted");
      req.destroy();
    };
    if (opts.signal?.aborted) {
      queueMicrotask(onAbort);
    } else {
      opts.signal?.addEventListener("abort", onAbort, { once: true });
    }
    req.on("error", (e) => finish(e.message || String(e)));
    req.on("response", (res) => {
      result.status = res.statusCode ?? 0;
      res.setEncoding("utf8");
      if (result.status !== 200) {
        let body = "";
        res.on("data", (d: string) => {
          if (body.length < 4096) body += d;
        });
        res.on("end", () => {
          let message = body.trim().slice(0, 300);
          try {
            const j = JSON.parse(body) as Chunk;
            const e = j.error;
            message = typeof e === "string" ? e : (e?.message ?? message);
          } catch {}
          finish(`HTTP ${result.status}: ${message}`);
        });
        res.on("error", (e) => finish(e.message));
        return;
      }
      const parser = new SseParser();
      const onEvent = (data: string, t: number): boolean => {
        if (data.trim() === "[DONE]") {
          sawDone = true;
          return false;
        }
        let chunk: Chunk;
        try {
          chunk = JSON.parse(data) as Chunk;
        } catch {
          finish(`not JSON in the stream: ${data.slice(0, 120)}`);
          return false;
        }
        if (chunk.error !== undefined && chunk.error !== null) {
          const e = chunk.error;
          finish(`error in the stream: ${typeof e === "string" ? e : (e.message ?? JSON.stringify(e))}`);
          return false;
        }
        const choice = chunk.choices?.[0];
        if (choice) {
          const text = spec.endpoint === "chat" ? choice.delta?.content : choice.text;
          if (typeof text === "string" && text.length > 0) {
            result.chunkTimes.push(t);
            result.text += text;
          }
          if (choice.finish_reason) result.finishReason = choice.finish_reason;
        }
        if (chunk.usage) {
          if (typeof chunk.usage.completion_tokens === "number")
            result.usageCompletionTokens = chunk.usage.completion_tokens;
          if (typeof chunk.usage.prompt_tokens === "number") result.usagePromptTokens = chunk.usage.prompt_tokens;
          const cached = chunk.usage.prompt_tokens_details?.cached_tokens;
          if (typeof cached === "number") result.cachedTokens = cached;
        }
        return true;
      };
      res.on("data", (d: string) => {
        const t = clock();
        for (const data of parser.push(d)) if (!onEvent(data, t) || settled) break;
        // The server ends the body right after [DONE]; the socket goes back to the agent then.
        if (sawDone) finish();
      });
      res.on("end", () => {
        const t = clock();
        for (const data of parser.flush()) if (!onEvent(data, t)) break;
        finish();
      });
      res.on("error", (e) => finish(e.message));
      res.on("close", () => finish(sawDone ? undefined : "the connection closed mid-stream"));
    });
    result.start = clock();
    req.end(payload);
  });
}
