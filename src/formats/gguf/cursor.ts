/**
 * Byte access for the GGUF reader: random-access sources (a file read in ≤ 1 GiB pieces, or a buffer) and
 * the bounds-checked sequential cursor the header parser reads through. Every read names what it reads,
 * so a corrupt file fails with one line saying which value and at which byte.
 */
import { closeSync, fstatSync, readSync } from "node:fs";
import { ModelFileError } from "../model-file-error.ts";

/** Random-access bytes: a file or an in-memory buffer. */
export interface ByteSource {
  readonly size: number;
  /** Fill `dst` from `position`; returns the bytes read (fewer only at end of file). */
  read(dst: Uint8Array, position: number): number;
  close(): void;
}

/** Node caps one read at 2^31-1 bytes; big tensors are read in pieces. */
const READ_CHUNK = 1 << 30;

export class FileSource implements ByteSource {
  readonly size: number;
  #fd: number | null;
  constructor(
    fd: number,
    readonly path: string,
  ) {
    this.#fd = fd;
    this.size = fstatSync(fd).size;
  }
  read(dst: Uint8Array, position: number): number {
    if (this.#fd === null) throw new ModelFileError(`${this.path}: read after close`, this.path);
    let done = 0;
    while (done < dst.length) {
      const n = readSync(this.#fd, dst, done, Math.min(READ_CHUNK, dst.length - done), position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }
  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}

export class BufferSource implements ByteSource {
  readonly size: number;
  constructor(private readonly bytes: Uint8Array) {
    this.size = bytes.length;
  }
  read(dst: Uint8Array, position: number): number {
    const n = Math.max(0, Math.min(dst.length, this.size - position));
    dst.set(this.bytes.subarray(position, position + n));
    return n;
  }
  close(): void {}
}

export interface ParseStats {
  /** The largest single buffer or array the parser allocated, in bytes (≤ the file size). */
  maxAllocBytes: number;
}

/** Non-fatal: token strings of some models hold invalid UTF-8; they decode with U+FFFD as llama.cpp would print. */
export const decoder = new TextDecoder("utf-8");

/** Header reading past this many bytes at once goes straight to the source. */
const CURSOR_CHUNK = 1 << 20;

/** Sequential reader over the header with bounds checks; every read names what it was reading. */
export class Cursor {
  pos = 0;
  #buf = new Uint8Array(0);
  #view = new DataView(this.#buf.buffer);
  #bufStart = 0;

  constructor(
    private readonly src: ByteSource,
    private readonly file: string,
    private readonly stats: ParseStats,
  ) {}

  get remaining(): number {
    return this.src.size - this.pos;
  }

  fail(msg: string, tensor?: string): ModelFileError {
    return new ModelFileError(`${this.file}: ${msg}`, this.file, tensor);
  }

  /** Records an allocation of `bytes` (already checked against the file size by the caller). */
  alloc(bytes: number): void {
    if (bytes > this.stats.maxAllocBytes) this.stats.maxAllocBytes = bytes;
  }

  #need(n: number, what: string): void {
    if (n > this.remaining) {
      throw this.fail(`truncated: ${what} at byte ${this.pos} needs ${n} bytes, ${this.remaining} remain`);
    }
    if (this.pos >= this.#bufStart && this.pos + n <= this.#bufStart + this.#buf.length) return;
    const len = Math.min(Math.max(n, CURSOR_CHUNK), this.remaining);
    if (len > this.#buf.length) {
      this.#buf = new Uint8Array(len);
      this.#view = new DataView(this.#buf.buffer);
      this.alloc(len);
    }
    const got = this.src.read(this.#buf.subarray(0, len), this.pos);
    if (got < n) throw this.fail(`unexpected end of file at byte ${this.pos + got} reading ${what}`);
    this.#bufStart = this.pos;
  }

  #at(n: number, what: string): number {
    this.#need(n, what);
    const off = this.pos - this.#bufStart;
    this.pos += n;
    return off;
  }

  u8(what: string): number {
    const at = this.#at(1, what);
    return this.#view.getUint8(at);
  }
  i8(what: string): number {
    const at = this.#at(1, what);
    return this.#view.getInt8(at);
  }
  u16(what: string): number {
    const at = this.#at(2, what);
    return this.#view.getUint16(at, true);
  }
  i16(what: string): number {
    const at = this.#at(2, what);
    return this.#view.getInt16(at, true);
  }
  u32(what: string): number {
    const at = this.#at(4, what);
    return this.#view.getUint32(at, true);
  }
  i32(what: string): number {
    const at = this.#at(4, what);
    return this.#view.getInt32(at, true);
  }
  f32(what: string): number {
    const at = this.#at(4, what);
    return this.#view.getFloat32(at, true);
  }
  f64(what: string): number {
    const at = this.#at(8, what);
    return this.#view.getFloat64(at, true);
  }
  u64(what: string): bigint {
    const at = this.#at(8, what);
    return this.#view.getBigUint64(at, true);
  }
  i64(what: string): bigint {
    const at = this.#at(8, what);
    return this.#view.getBigInt64(at, true);
  }

  /** A u64 count or length that must fit the remaining bytes at `unit` bytes each. */
  count(what: string, unit: number): number {
    const start = this.pos;
    const n = this.u64(what);
    if (n * BigInt(unit) > BigInt(this.remaining)) {
      throw this.fail(
        `${what} ${n} at byte ${start} cannot fit: it needs at least ${n * BigInt(unit)} bytes but only ` +
          `${this.remaining} remain (an absurd count, or a truncated file)`,
      );
    }
    return Number(n);
  }

  /** A fresh copy of the next n bytes (n already checked ≤ remaining by the caller or checked here). */
  bytes(n: number, what: string): Uint8Array {
    if (n > this.remaining) throw this.fail(`truncated: ${what} at byte ${this.pos} needs ${n} bytes`);
    this.alloc(n);
    if (n > CURSOR_CHUNK) {
      const out = new Uint8Array(n);
      const got = this.src.read(out, this.pos);
      if (got < n) throw this.fail(`unexpected end of file at byte ${this.pos + got} reading ${what}`);
      this.pos += n;
      return out;
    }
    const off = this.#at(n, what);
    return this.#buf.slice(off, off + n);
  }

  string(what: string): string {
    const len = this.count(`${what} length`, 1);
    if (len === 0) return "";
    this.alloc(len);
    if (len > CURSOR_CHUNK) return decoder.decode(this.bytes(len, what));
    const off = this.#at(len, what);
    return decoder.decode(this.#buf.subarray(off, off + len));
  }
}
