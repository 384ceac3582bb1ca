/**
 * Typed access to the fields of an untrusted JSON object: own properties only, `null` treated as absent (as
 * OpenAI does for optional fields), and a 400 naming the parameter when a type is wrong.
 */

import type { JsonObject } from "./body.ts";
import { badRequest } from "./errors.ts";

export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `a string (${JSON.stringify(v.length > 30 ? `${v.slice(0, 30)}…` : v)})`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

export function isPlainObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Reads fields of one JSON object; `prefix` names nested objects in messages ("messages[2]."). */
export class Fields {
  constructor(
    readonly obj: JsonObject,
    readonly prefix = "",
  ) {}

  has(key: string): boolean {
    return Object.hasOwn(this.obj, key) && this.obj[key] !== null && this.obj[key] !== undefined;
  }

  /** The raw value (undefined when absent or null). */
  raw(key: string): unknown {
    return this.has(key) ? this.obj[key] : undefined;
  }

  name(key: string): string {
    return this.prefix + key;
  }

  fail(key: string, what: string): never {
    throw badRequest(
      `${this.name(key)} must be ${what}, got ${describe(this.obj[key])}`,
      this.name(key),
      "invalid_type",
    );
  }

  string(key: string): string | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== "string") this.fail(key, "a string");
    return v;
  }

  bool(key: string): boolean | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") this.fail(key, "a boolean");
    return v;
  }

  int(key: string, lo = Number.MIN_SAFE_INTEGER, hi = Number.MAX_SAFE_INTEGER): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isSafeInteger(v)) this.fail(key, "an integer");
    if (v < lo || v > hi) {
      throw badRequest(`${this.name(key)} must be in [${lo}, ${hi}], got ${v}`, this.name(key), "invalid_value");
    }
    return v;
  }

  object(key: string): Fields | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (!isPlainObject(v)) this.fail(key, "an object");
    return new Fields(v, `${this.name(key)}.`);
  }
}
