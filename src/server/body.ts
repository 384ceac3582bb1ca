/**
 * Reading and parsing request bodies safely: a byte limit enforced while reading (413 as soon as it is
 * passed), JSON content type (415), strict UTF-8 (400), bounded nesting (400), and a parse that drops
 * `__proto__` / `constructor` / `prototype` keys so nothing downstream can be polluted through them.
 */
import type { IncomingMessage } from "node:http";
import { ApiError, badRequest } from "./errors.ts";

export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
export const MAX_JSON_DEPTH = 32;

/** The client went away before sending the whole body. Not answered. */
export class ClientGoneError extends Error {
  override name = "ClientGoneError";
}

export type JsonObject = Record<string, unknown>;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

function isJsonContentType(ct: string | undefined): boolean {
  if (ct === undefined || ct.trim() === "") return true; // lenient: curl without -H, some SDKs
  const mime = ct.split(";")[0].trim().toLowerCase();
  return mime === "application/json" || (mime.startsWith("application/") && mime.endsWith("+json"));
}

/** Reads the raw body, failing with 413 as soon as more than `maxBytes` arrive. */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined) {
    const n = Number(declared);
    if (Number.isFinite(n) && n > maxBytes) return Promise.reject(tooLarge(maxBytes));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const settle = (err: Error | null, body?: Buffer) => {
      if (settled) return;
      settled = true;
      cleanup();
      if (err) reject(err);
      else resolve(body as Buffer);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        // Stop reading: no more data is taken from the socket, and the connection is closed after the answer.
        req.pause();
        chunks.length = 0;
        settle(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => settle(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    const onError = () => settle(new ClientGoneError("request stream failed"));
    const onClose = () => settle(new ClientGoneError("client closed the connection"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(413, `request body is larger than the limit of ${maxBytes} bytes`, {
    code: "request_too_large",
    closeConnection: true,
  });
}

/** Rejects nesting deeper than `maxDepth` before JSON.parse sees it (deep input could overflow its stack). */
export function checkDepth(text: string, maxDepth: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) throw badRequest(`JSON nesting is deeper than ${maxDepth} levels`, null, "invalid_json");
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
}

const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

function reviver(key: string, value: unknown): unknown {
  return FORBIDDEN_KEYS.has(key) ? undefined : value;
}

/** Parses JSON text with the depth bound and the forbidden keys dropped. Throws 400 ApiErrors. */
export function parseJsonText(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  checkDepth(text, maxDepth);
  try {
    return JSON.parse(text, reviver);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw badRequest(
      `request body is not valid JSON: ${msg.length > 200 ? `${msg.slice(0, 200)}…` : msg}`,
      null,
      "invalid_json",
    );
  }
}

/** Bytes → JSON object, with every check above. */
export function parseJsonBody(buf: Buffer): JsonObject {
  let text: string;
  try {
    text = utf8.decode(buf);
  } catch {
    throw badRequest("request body is not valid UTF-8", null, "invalid_encoding");
  }
  if (text.trim() === "") throw badRequest("request body is empty; expected a JSON object", null, "invalid_json");
  const value = parseJsonText(text);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badRequest("request body must be a JSON object", null, "invalid_json");
  }
  return value as JsonObject;
}

/** Reads and parses a JSON object body (415 / 413 / 400 as appropriate). */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<JsonObject> {
  const ct = req.headers["content-type"];
  if (!isJsonContentType(ct)) {
    throw new ApiError(415, `unsupported content type "${ct}"; send application/json`, {
      code: "unsupported_media_type",
    });
  }
  return parseJsonBody(await readBody(req, maxBytes));
}
