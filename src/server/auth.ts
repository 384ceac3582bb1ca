/** Bearer-token auth (`--api-key`), compared in constant time. */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { ApiError } from "./errors.ts";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** Checks `Authorization: Bearer <key>`; a no-op when no key is configured. */
export function makeAuthCheck(apiKey: string | undefined): (req: IncomingMessage) => void {
  if (apiKey === undefined || apiKey === "") return () => {};
  // Hashing both sides gives equal lengths, so timingSafeEqual can compare without leaking the key's length.
  const expected = digest(apiKey);
  return (req) => {
    const header = req.headers.authorization;
    const m = typeof header === "string" ? /^Bearer[ \t]+(.+?)[ \t]*$/i.exec(header) : null;
    if (m && timingSafeEqual(digest(m[1]), expected)) return;
    throw new ApiError(
      401,
      m ? "Incorrect API key provided." : "Missing API key: send `Authorization: Bearer <key>`.",
      {
        code: "invalid_api_key",
        headers: { "www-authenticate": 'Bearer realm="loom"' },
      },
    );
  };
}
