/**
 * A small OpenAI-compatible SSE server for the benchmark's tests: /v1/completions and /v1/chat/completions
 * stream max_tokens one-token chunks after a set TTFT and inter-token gap, then a usage chunk and [DONE];
 * /tokenize maps words to ids; /v1/models, /health and /metrics answer. It records every request's
 * arrival time and body, and the most requests it had in flight at once. Listens on 127.0.0.1 only.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeServerOptions {
  ttftMs?: number;
  itlMs?: number;
  /** Answer this status (JSON error) instead of streaming, for requests whose index matches. */
  failWith?: (index: number) => number | null;
  /** Break the stream with an error event after this many tokens, for requests whose index matches. */
  breakAfter?: (index: number) => number | null;
  /** Send several tokens in one write (tests of SSE parsing). */
  tokensPerWrite?: number;
  /** Use CRLF line endings. */
  crlf?: boolean;
  /** No /tokenize route (404). */
  noTokenize?: boolean;
  model?: string;
}

export interface ReceivedRequest {
  index: number;
  path: string;
  at: number;
  body: Record<string, unknown>;
}

export interface FakeServer {
  url: string;
  received: ReceivedRequest[];
  maxInFlight: number;
  inFlight: number;
  close(): Promise<void>;
}

function wordId(w: string): number {
  let h = 7;
  for (const ch of w) h = (h * 31 + ch.charCodeAt(0)) % 997;
  return 10 + h;
}

export async function startFakeServer(o: FakeServerOptions = {}): Promise<FakeServer> {
  const ttft = o.ttftMs ?? 20;
  const itl = o.itlMs ?? 5;
  const model = o.model ?? "fake-model";
  const t0 = performance.now();
  const state: FakeServer = { url: "", received: [], maxInFlight: 0, inFlight: 0, close: async () => {} };
  const timers = new Set<NodeJS.Timeout>();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const server = http.createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "GET" && path === "/health") return json(200, {});
    if (req.method === "GET" && path === "/v1/models") return json(200, { object: "list", data: [{ id: model }] });
    if (req.method === "GET" && path === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain" });
      return res.end(`# HELP x\nvllm:prefix_cache_hits{model_name="${model}"} ${state.received.length}\n`);
    }
    if (req.method === "POST" && path === "/tokenize" && !o.noTokenize) {
      const body = JSON.parse(raw) as { prompt?: string };
      const tokens = String(body.prompt ?? "")
        .split(/\s+/)
        .filter(Boolean)
        .map(wordId);
      return json(200, { count: tokens.length, max_model_len: 4096, tokens });
    }
    if (req.method !== "POST" || (path !== "/v1/completions" && path !== "/v1/chat/completions")) {
      return json(404, { error: { message: "no route", type: "not_found", param: null, code: null } });
    }
    const body = JSON.parse(raw) as Record<string, unknown>;
    const index = state.received.length;
    state.received.push({ index, path, at: performance.now() - t0, body });
    const status = o.failWith?.(index) ?? null;
    if (status !== null) {
      return json(status, { error: { message: `fake failure ${status}`, type: "x", param: null, code: null } });
    }
    const chat = path === "/v1/chat/completions";
    const n = Number(chat ? body.max_completion_tokens : body.max_tokens) || 16;
    const prompt = body.prompt;
    const promptTokens = Array.isArray(prompt)
      ? prompt.length
      : chat
        ? JSON.stringify(body.messages).split(/\s+/).length
        : String(prompt).split(/\s+/).length;
    const breakAt = o.breakAfter?.(index) ?? null;
    const nl = o.crlf ? "\r\n" : "\n";
    const event = (d: unknown) => `data: ${typeof d === "string" ? d : JSON.stringify(d)}${nl}${nl}`;
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    let closed = false;
    res.on("close", () => {
      closed = true;
    });
    try {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      if (chat) {
        res.write(
          event({
            object: "chat.completion.chunk",
            choices: [{ index: 0, delta: { role: "assistant", content: "" } }],
          }),
        );
      }
      // A keep-alive comment, as some servers send.
      res.write(`: ping${nl}${nl}`);
      await sleep(ttft);
      const per = Math.max(1, o.tokensPerWrite ?? 1);
      for (let i = 0; i < n && !closed; i += per) {
        if (i > 0) await sleep(itl);
        let out = "";
        for (let k = i; k < Math.min(n, i + per); k++) {
          if (breakAt !== null && k === breakAt) {
            res.write(out + event({ error: { message: "fake mid-stream failure", type: "x", code: 500 } }));
            res.end(event("[DONE]"));
            return;
          }
          const finish = k === n - 1 ? "length" : null;
          const text = ` w${k}`;
          out += event(
            chat
              ? {
                  object: "chat.completion.chunk",
                  choices: [{ index: 0, delta: { content: text }, finish_reason: finish }],
                }
              : { object: "text_completion", choices: [{ index: 0, text, finish_reason: finish }] },
          );
        }
        res.write(out);
      }
      res.write(
        event({
          choices: [],
          usage: { prompt_tokens: promptTokens, completion_tokens: n, total_tokens: promptTokens + n },
        }),
      );
      res.end(event("[DONE]"));
    } finally {
      state.inFlight--;
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = async () => {
    for (const t of timers) clearTimeout(t);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}
