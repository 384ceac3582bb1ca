/**
 * GGUF reader: header, metadata and tensor directory parsed and validated up front; tensor data read on demand.
 *
 * File format (versions 2 and 3; https://github.com/ggml-org/ggml/blob/master/docs/gguf.md). Little-endian
 * throughout; v3 only added the possibility of big-endian files, which we refuse. v1 (u32 counts) is refused.
 *
 *   u32   magic            "GGUF" (bytes 47 47 55 46)
 *   u32   version          2 or 3
 *   u64   tensor_count
 *   u64   metadata_kv_count
 *   kv[metadata_kv_count]:
 *           string key                          string = u64 byte length + UTF-8 bytes (no terminator)
 *           u32    value_type                   0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte),
 *           value                               8 string, 9 array, 10 u64, 11 i64, 12 f64
 *                                               array = u32 item_type + u64 count + count items (no nested arrays)
 *   tensor_info[tensor_count]:
 *           string name                         < 64 bytes for llama.cpp
 *           u32    n_dims                       ≤ 4
 *           u64    ne[n_dims]                   ne[0] is the fastest-moving (row) dimension: a [rows, cols]
 *                                               matrix is stored as ne = [cols, rows]; ne[0] % block size == 0
 *           u32    ggml_type                    see types.ts
 *           u64    offset                       from the start of the data section; multiple of the alignment
 *   padding to `general.alignment` (a u32 metadata value, power of two; default 32)
 *   data section                                tensor bytes at data_start + offset, rows of
 *                                               ne[0] / block_size blocks of type_size bytes each
 *
 *   ┌──────┬─────────┬────────────┬──────────────────┬─────────┬──────────────────────────────┐
 *   │ magic│ version │ counts     │ kv … tensor infos│ padding │ data: t0 ░pad░ t1 ░pad░ …    │
 *   └──────┴─────────┴────────────┴──────────────────┴─────────┴──────────────────────────────┘
 *                                                              ^ data_start = align(end of infos)
 *
 * Robustness: every length, count and offset is checked against the bytes that remain in the file before
 * anything is allocated or read, so a corrupt file fails with one ModelFileError line naming the file (and
 * the key or tensor) rather than with a crash, a hang or a huge allocation. `stats.maxAllocBytes` records
 * the largest single allocation the parser made, which never exceeds the file size. Each loop iteration
 * consumes at least one byte, so parsing time is linear in the file size.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { ModelFileError } from "../model-file-error.ts";
import { BufferSource, type ByteSource, Cursor, FileSource, type ParseStats } from "./cursor.ts";
import {
  GGML_MAX_DIMS,
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  type GgmlTypeInfo,
  GgufValueType,
  VALUE_TYPE_NAME,
  VALUE_TYPE_SIZE,
} from "./types.ts";

export type GgufNumberArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array;

/** A metadata value: u64/i64 scalars are bigints, numeric arrays are typed arrays. */
export type GgufValue = number | bigint | boolean | string | GgufNumberArray | boolean[] | string[];

export interface GgufKv {
  key: string;
  /** The value type; GgufValueType.ARRAY for arrays. */
  type: number;
  /** For arrays: the item type. */
  itemType: number | null;
  value: GgufValue;
}

export interface GgufTensorInfo {
  name: string;
  type: number;
  typeInfo: GgmlTypeInfo;
  /** ggml order: ne[0] is the row length. */
  ne: number[];
  /** Row-major shape (ne reversed): [rows, cols] for a matrix, as Hugging Face stores [out, in]. */
  shape: number[];
  numElements: number;
  /** Absolute byte offset of the tensor's first byte in the file. */
  offset: number;
  byteLength: number;
}

/** Smallest encodings: a kv is ≥ 8 (key length) + 1 (key) + 4 (type) + 1 (value) bytes; a tensor info ≥ 8+1+4+4+8. */
const MIN_KV_BYTES = 14;
const MIN_TENSOR_INFO_BYTES = 25;

/** A string from a file, quoted and escaped for a one-line message (long ones cut). */
export function show(s: string): string {
  const cut = s.length > 80 ? `${s.slice(0, 77)}…` : s;
  return JSON.stringify(cut)
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

const TYPED_ARRAYS: Record<number, { new (buf: ArrayBuffer): GgufNumberArray }> = {
  0: Uint8Array,
  1: Int8Array,
  2: Uint16Array,
  3: Int16Array,
  4: Uint32Array,
  5: Int32Array,
  6: Float32Array,
  10: BigUint64Array,
  11: BigInt64Array,
  12: Float64Array,
};

/**
 * The shortest decimal that rounds to the same float32 (as Python prints numpy.float32): metadata such as
 * an rms_norm_eps of 1e-5, stored as f32 9.99999975e-6, reads back as 1e-5.
 */
export function shortestF32(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  for (let p = 1; p <= 9; p++) {
    const x = Number(v.toPrecision(p));
    if (Math.fround(x) === v) return x;
  }
  return v;
}

function readScalar(c: Cursor, type: number, what: string): GgufValue {
  switch (type) {
    case GgufValueType.UINT8:
      return c.u8(what);
    case GgufValueType.INT8:
      return c.i8(what);
    case GgufValueType.UINT16:
      return c.u16(what);
    case GgufValueType.INT16:
      return c.i16(what);
    case GgufValueType.UINT32:
      return c.u32(what);
    case GgufValueType.INT32:
      return c.i32(what);
    case GgufValueType.FLOAT32:
      return shortestF32(c.f32(what));
    case GgufValueType.BOOL:
      return c.u8(what) !== 0;
    case GgufValueType.STRING:
      return c.string(what);
    case GgufValueType.UINT64:
      return c.u64(what);
    case GgufValueType.INT64:
      return c.i64(what);
    case GgufValueType.FLOAT64:
      return c.f64(what);
    default:
      throw c.fail(`${what} has invalid value type ${type}`);
  }
}

function readKv(c: Cursor, index: number, seen: Map<string, GgufKv>): GgufKv {
  const key = c.string(`metadata key #${index}`);
  if (key === "") throw c.fail(`metadata key #${index} is empty`);
  if (seen.has(key)) throw c.fail(`duplicate metadata key ${show(key)}`);
  const type = c.u32(`type of ${show(key)}`);
  if (type !== GgufValueType.ARRAY) {
    if (VALUE_TYPE_NAME[type] === undefined) throw c.fail(`metadata ${show(key)} has invalid value type ${type}`);
    return { key, type, itemType: null, value: readScalar(c, type, `value of ${show(key)}`) };
  }
  const itemType = c.u32(`item type of ${show(key)}`);
  if (itemType === GgufValueType.ARRAY) throw c.fail(`metadata ${show(key)}: nested arrays are not supported`);
  if (VALUE_TYPE_NAME[itemType] === undefined)
    throw c.fail(`metadata ${show(key)} has invalid array item type ${itemType}`);
  if (itemType === GgufValueType.STRING) {
    // Each string is at least its 8-byte length.
    const n = c.count(`length of array ${show(key)}`, 8);
    c.alloc(n * 8);
    const items = new Array<string>(n);
    for (let i = 0; i < n; i++) items[i] = c.string(`${show(key)}[${i}]`);
    return { key, type, itemType, value: items };
  }
  const size = VALUE_TYPE_SIZE[itemType];
  const n = c.count(`length of array ${show(key)}`, size);
  const raw = c.bytes(n * size, `array ${show(key)}`);
  if (itemType === GgufValueType.BOOL) {
    c.alloc(n * 8);
    return { key, type, itemType, value: Array.from(raw, (b) => b !== 0) };
  }
  // `raw` is a fresh buffer at offset 0, so it is aligned for any element size (the host is little-endian).
  return { key, type, itemType, value: new TYPED_ARRAYS[itemType](raw.buffer as ArrayBuffer) };
}

function readTensorInfo(
  c: Cursor,
  index: number,
  names: Set<string>,
): Omit<GgufTensorInfo, "offset"> & { rel: bigint } {
  const name = c.string(`name of tensor #${index}`);
  if (name === "") throw c.fail(`tensor #${index} has an empty name`);
  if (names.has(name)) throw c.fail(`duplicate tensor name ${show(name)}`, name);
  const bad = (msg: string) => c.fail(`tensor ${show(name)}: ${msg}`, name);
  const nDims = c.u32(`dimension count of ${show(name)}`);
  if (nDims < 1 || nDims > GGML_MAX_DIMS) throw bad(`invalid number of dimensions ${nDims} (1..${GGML_MAX_DIMS})`);
  const ne: number[] = [];
  let numel = 1n;
  for (let d = 0; d < nDims; d++) {
    const v = c.u64(`dimension ${d} of ${show(name)}`);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`dimension ${d} is absurd (${v})`);
    ne.push(Number(v));
    numel *= v;
  }
  const type = c.u32(`type of ${show(name)}`);
  const typeInfo = GGML_TYPES.get(type);
  if (!typeInfo) throw bad(`unknown ggml type ${type}`);
  if (ne[0] % typeInfo.blockSize !== 0) {
    throw bad(`row length ${ne[0]} is not a multiple of the ${typeInfo.name} block size ${typeInfo.blockSize}`);
  }
  const bytes = (numel / BigInt(typeInfo.blockSize)) * BigInt(typeInfo.typeSize);
  if (bytes > BigInt(c.remaining + c.pos)) {
    throw bad(
      `shape [${ne}] of ${typeInfo.name} needs ${bytes} bytes, more than the whole file (${c.remaining + c.pos})`,
    );
  }
  const rel = c.u64(`offset of ${show(name)}`);
  names.add(name);
  return {
    name,
    type,
    typeInfo,
    ne,
    shape: [...ne].reverse(),
    numElements: Number(numel),
    byteLength: Number(bytes),
    rel,
  };
}

/** An open GGUF file. Keeps its file descriptor until `close()`. */
export class GgufFile {
  readonly path: string;
  readonly version: number;
  readonly alignment: number;
  /** Absolute offset of the data section. */
  readonly dataOffset: number;
  readonly size: number;
  readonly metadata: ReadonlyMap<string, GgufKv>;
  /** In file order. */
  readonly tensors: ReadonlyMap<string, GgufTensorInfo>;
  readonly stats: ParseStats;
  #src: ByteSource;
  #closed = false;

  private constructor(src: ByteSource, path: string) {
    this.#src = src;
    this.path = path;
    this.size = src.size;
    this.stats = { maxAllocBytes: 0 };
    const c = new Cursor(src, path, this.stats);
    if (src.size < 24) throw c.fail(`truncated: ${src.size} bytes is too short for a GGUF header (24 bytes)`);
    const magic = c.u32("magic");
    if (magic !== GGUF_MAGIC) {
      const shown = [0, 8, 16, 24].map((s) => (magic >>> s) & 0xff);
      const text = shown.map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "?")).join("");
      throw c.fail(
        `not a GGUF file: magic is "${text}" (0x${shown.map((b) => b.toString(16).padStart(2, "0")).join("")}), expected "GGUF"`,
      );
    }
    const version = c.u32("version");
    if (version === 1) throw c.fail("GGUF version 1 is not supported (versions 2 and 3 are)");
    if (version !== 2 && version !== 3) {
      const hint = (version & 0xffff) === 0 ? " (a big-endian file? only little-endian GGUF is supported)" : "";
      throw c.fail(`unsupported GGUF version ${version}${hint}; versions 2 and 3 are supported`);
    }
    this.version = version;
    const nTensors = c.count("tensor count", MIN_TENSOR_INFO_BYTES);
    const nKv = c.count("metadata count", MIN_KV_BYTES);

    const metadata = new Map<string, GgufKv>();
    for (let i = 0; i < nKv; i++) {
      const kv = readKv(c, i, metadata);
      metadata.set(kv.key, kv);
    }
    this.metadata = metadata;
    const alignKv = metadata.get("general.alignment");
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    if (alignKv) {
      if (alignKv.type !== GgufValueType.UINT32) throw c.fail(`"general.alignment" must be a u32`);
      alignment = alignKv.value as number;
      if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
        throw c.fail(`"general.alignment" ${alignment} is not a power of two`);
      }
    }
    this.alignment = alignment;

    const names = new Set<string>();
    const infos: ReturnType<typeof readTensorInfo>[] = [];
    for (let i = 0; i < nTensors; i++) infos.push(readTensorInfo(c, i, names));
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    if (nTensors > 0 && dataOffset > src.size) {
      throw c.fail(`truncated: the data section would start at byte ${dataOffset}, past the end (${src.size} bytes)`);
    }
    this.dataOffset = dataOffset;
    const dataSize = src.size - dataOffset;
    const tensors = new Map<string, GgufTensorInfo>();
    for (const { rel, ...t } of infos) {
      const bad = (msg: string) => c.fail(`tensor ${show(t.name)}: ${msg}`, t.name);
      if (rel % BigInt(alignment) !== 0n) throw bad(`offset ${rel} is not a multiple of the alignment ${alignment}`);
      if (rel + BigInt(t.byteLength) > BigInt(dataSize)) {
        throw bad(
          `data [${rel}, ${rel + BigInt(t.byteLength)}) runs past the end of the file (data section is ${dataSize} bytes)`,
        );
      }
      tensors.set(t.name, { ...t, offset: dataOffset + Number(rel) });
    }
    // No two tensors may share bytes.
    const byOffset = [...tensors.values()].filter((t) => t.byteLength > 0).sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < byOffset.length; i++) {
      const prev = byOffset[i - 1];
      if (byOffset[i].offset < prev.offset + prev.byteLength) {
        throw c.fail(`tensor ${show(byOffset[i].name)} overlaps tensor ${show(prev.name)}`, byOffset[i].name);
      }
    }
    this.tensors = tensors;
  }

  /** Opens and validates a GGUF file; throws ModelFileError (one line, naming the file) when it is not valid. */
  static open(path: string): GgufFile {
    const full = resolve(path);
    let fd: number;
    try {
      fd = openSync(full, "r");
    } catch (e) {
      throw new ModelFileError(`${full}: cannot open: ${(e as Error).message}`, full);
    }
    const src = new FileSource(fd, full);
    try {
      return new GgufFile(src, full);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  /** Parses GGUF bytes held in memory; `name` stands for the file in messages. */
  static fromBytes(bytes: Uint8Array, name = "<memory>"): GgufFile {
    return new GgufFile(new BufferSource(bytes), name);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** Throws ModelFileError naming the tensor when absent. */
  tensor(name: string): GgufTensorInfo {
    const t = this.tensors.get(name);
    if (!t)
      throw new ModelFileError(
        `${this.path}: tensor ${show(name)} not found (${this.tensors.size} tensors)`,
        this.path,
        name,
      );
    return t;
  }

  /** The tensor's raw bytes, freshly read (byteLength was checked against the file at open). */
  readTensorBytes(name: string): Uint8Array {
    const t = this.tensor(name);
    if (this.#closed)
      throw new ModelFileError(`${this.path}: cannot read tensor ${show(name)}: closed`, this.path, name);
    const out = new Uint8Array(t.byteLength);
    const got = this.#src.read(out, t.offset);
    if (got < t.byteLength) {
      throw new ModelFileError(
        `${this.path}: tensor ${show(name)}: unexpected end of file at byte ${t.offset + got}`,
        this.path,
        name,
      );
    }
    return out;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#src.close();
  }

  // Typed metadata access. Absent keys give undefined; present keys of the wrong type throw ModelFileError.

  get(key: string): GgufKv | undefined {
    return this.metadata.get(key);
  }

  #wrongType(kv: GgufKv, want: string): ModelFileError {
    const is =
      kv.type === GgufValueType.ARRAY ? `array of ${VALUE_TYPE_NAME[kv.itemType ?? -1]}` : VALUE_TYPE_NAME[kv.type];
    return new ModelFileError(`${this.path}: metadata ${show(kv.key)} must be ${want} (it is ${is})`, this.path);
  }

  string(key: string): string | undefined {
    const kv = this.metadata.get(key);
    if (!kv) return undefined;
    if (kv.type !== GgufValueType.STRING) throw this.#wrongType(kv, "a string");
    return kv.value as string;
  }

  /** Any numeric scalar (integers and floats); 64-bit integers must be exactly representable. */
  number(key: string): number | undefined {
    const kv = this.metadata.get(key);
    if (!kv) return undefined;
    if (kv.type === GgufValueType.ARRAY || kv.type === GgufValueType.STRING || kv.type === GgufValueType.BOOL) {
      throw this.#wrongType(kv, "a number");
    }
    const v = kv.value as number | bigint;
    if (typeof v === "bigint") {
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new ModelFileError(`${this.path}: metadata ${show(key)} = ${v} is out of range`, this.path);
      }
      return Number(v);
    }
    return v;
  }

  /** A non-negative integer scalar. */
  uint(key: string): number | undefined {
    const v = this.number(key);
    if (v === undefined) return undefined;
    if (!Number.isInteger(v) || v < 0) {
      throw new ModelFileError(
        `${this.path}: metadata ${show(key)} must be a non-negative integer (got ${v})`,
        this.path,
      );
    }
    return v;
  }

  bool(key: string): boolean | undefined {
    const kv = this.metadata.get(key);
    if (!kv) return undefined;
    if (kv.type !== GgufValueType.BOOL) throw this.#wrongType(kv, "a bool");
    return kv.value as boolean;
  }

  stringArray(key: string): string[] | undefined {
    const kv = this.metadata.get(key);
    if (!kv) return undefined;
    if (kv.type !== GgufValueType.ARRAY || kv.itemType !== GgufValueType.STRING)
      throw this.#wrongType(kv, "an array of strings");
    return kv.value as string[];
  }

  /** A numeric array (any integer or float item type) as plain numbers. */
  numberArray(key: string): ArrayLike<number> | undefined {
    const kv = this.metadata.get(key);
    if (!kv) return undefined;
    if (kv.type !== GgufValueType.ARRAY || kv.itemType === GgufValueType.STRING || kv.itemType === GgufValueType.BOOL) {
      throw this.#wrongType(kv, "a numeric array");
    }
    const v = kv.value as GgufNumberArray;
    if (v instanceof BigInt64Array || v instanceof BigUint64Array) return Array.from(v, Number);
    return v as ArrayLike<number>;
  }
}

/**
 * Whether `path` is a GGUF file: a regular file named *.gguf, or any regular file starting with "GGUF".
 * Never throws (a missing path is not a GGUF file).
 */
export function isGgufFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    if (path.toLowerCase().endsWith(".gguf")) return true;
    const fd = openSync(path, "r");
    try {
      const head = new Uint8Array(4);
      return readSync(fd, head, 0, 4, 0) === 4 && new DataView(head.buffer).getUint32(0, true) === GGUF_MAGIC;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}
