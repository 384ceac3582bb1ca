/** Small non-streaming calls the benchmark makes to the server under test: models, tokenize, health, metrics. */
import { apiUrl } from "./sse-client.ts";

export interface ApiTarget {
  baseUrl: string;
  apiKey?: string;
}

function headers(t: ApiTarget): Record<string, string> {
  return {
    "content-type": "application/json",
    ...(t.apiKey ? { authorization: `Bearer ${t.apiKey}` } : {}),
  };
}

async function getJson(t: ApiTarget, path: string, timeoutMs = 10_000): Promise<unknown> {
  const res = await fetch(apiUrl(t.baseUrl, path), { headers: headers(t), signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
  return res.json();
}

/** The first model the server lists at /v1/models, or undefined when it lists none or has no such route. */
export async function firstModel(t: ApiTarget): Promise<string | undefined> {
  try {
    const j = (await getJson(t, "/v1/models")) as { data?: { id?: unknown }[] };
    const id = j.data?.[0]?.id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

/** Token ids of `text` from the server's POST /tokenize (vLLM's extension); null when it has none. */
export async function tokenize(
  t: ApiTarget,
  text: string,
  model: string | undefined,
  addSpecialTokens = false,
): Promise<number[] | null> {
  try {
    const res = await fetch(apiUrl(t.baseUrl, "/tokenize"), {
      method: "POST",
      headers: headers(t),
      body: JSON.stringify({
        ...(model !== undefined ? { model } : {}),
        prompt: text,
        add_special_tokens: addSpecialTokens,
      }),
      signal: AbortSignal.timeout(30_000),
    });
    if (!res.ok) return null;
    const j = (await res.json()) as { tokens?: unknown };
    return Array.isArray(j.tokens) && j.tokens.every((x) => Number.isInteger(x)) ? (j.tokens as number[]) : null;
  } catch {
    return null;
  }
}

/** True when GET /health answers 200. */
export async function healthy(t: ApiTarget, timeoutMs = 2_000): Promise<boolean> {
  try {
    const res = await fetch(apiUrl(t.baseUrl, "/health"), { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/**
 * A few counters from the Prometheus text at /metrics (summed over label sets), e.g. prefix cache hits;
 * empty when the server has no /metrics.
 */
export async function scrapeCounters(t: ApiTarget, names: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  try {
    const res = await fetch(apiUrl(t.baseUrl, "/metrics"), { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) return out;
    const text = await res.text();
    for (const line of text.split("\n")) {
      if (line.startsWith("#")) continue;
      const m = /^([A-Za-z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!m || !names.includes(m[1])) continue;
      const v = Number(m[3]);
      if (Number.isFinite(v)) out[m[1]] = (out[m[1]] ?? 0) + v;
    }
  } catch {}
  return out;
}
