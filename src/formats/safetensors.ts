/**
 * Safetensors reader: single files and sharded checkpoints, tensors read on demand.
 *
 * File format (https://github.com/huggingface/safetensors):
 *
 *   bytes [0, 8)        N, a little-endian u64: the header length in bytes
 *   bytes [8, 8+N)      the header, a UTF-8 JSON object (writers often pad it with spaces):
 *                         { "<tensor name>": { "dtype": "BF16", "shape": [4096, 384], "data_offsets": [begin, end] },
 *                           ...,
 *                           "__metadata__": { "format": "pt" } }          <- optional, string -> string
 *   bytes [8+N, EOF)    the data section; a tensor's bytes are [8+N+begin, 8+N+end): row-major, little-endian
 *
 * A sharded checkpoint is a folder with `model.safetensors.index.json` next to its shards:
 *
 *   { "metadata": {...}, "weight_map": { "<tensor name>": "model-00001-of-00002.safetensors", ... } }
 *
 * Checkpoints are routinely larger than 2 GiB (and than the largest Node Buffer), so a file is never read
 * whole: opening reads only the headers, and each tensor is read by `read()` with a positioned fs.readSync.
 * Every header is validated up front, so a bad file fails at open with a message naming file and tensor
 * rather than later with garbage weights.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import type { WeightDType } from "../backends/backend.ts";
import { ModelFileError } from "./model-file-error.ts";

/** Tensor element types we read: the float weight types, plus int32 (index tensors such as the refs' top ids). */
export type TensorDType = WeightDType | "i32";

/** A tensor as read from a file: raw little-endian bytes, row-major. */
export interface RawTensor {
  readonly dtype: TensorDType;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/** Where one tensor lives and what it holds. */
export interface TensorInfo {
  name: string;
  dtype: TensorDType;
  shape: number[];
  /** Absolute path of the .safetensors file (the shard, for sharded checkpoints). */
  file: string;
  /** Absolute byte offset of the tensor's first byte in `file`. */
  offset: number;
  byteLength: number;
}

/** An open checkpoint. File descriptors stay open (one per file) until `close()`. */
export interface SafetensorsModel {
  /** Every tensor, in header order (weight_map order for sharded checkpoints). */
  readonly tensorNames: string[];
  has(name: string): boolean;
  /** Throws ModelFileError naming the tensor and the checkpoint when `name` is absent. */
  info(name: string): TensorInfo;
  /** The tensor's bytes, freshly read from disk into a new buffer. */
  read(name: string): RawTensor;
  /** Close the files; later `read()` calls throw. Safe to call twice. */
  close(): void;
}

const SINGLE_FILE = "model.safetensors";
const INDEX_FILE = "model.safetensors.index.json";
/** A header this large is certainly not one (real headers are KBs to a few MB): refuse before allocating. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Node caps a single read at 2^31-1 bytes, so big tensors are read in pieces. */
const READ_CHUNK = 1 << 30;

/** Safetensors dtype -> ours and its size. A Map, so that names like "constructor" are not found. */
const DTYPES = new Map<string, { dtype: TensorDType; size: number }>([
  ["F32", { dtype: "f32", size: 4 }],
  ["I32", { dtype: "i32", size: 4 }],
  ["F16", { dtype: "f16", size: 2 }],
  ["BF16", { dtype: "bf16", size: 2 }],
]);

/**
 * Open a checkpoint: a `.safetensors` file, a `model.safetensors.index.json`, or a model folder holding
 * either `model.safetensors` or `model.safetensors.index.json` (sharded). Reads and validates the headers;
 * tensor data is read only by `read()`. Throws ModelFileError for a missing, truncated or malformed file.
 */
export function openSafetensors(path: string): SafetensorsModel {
  const full = resolve(path);
  let isDir: boolean;
  try {
    isDir = statSync(full).isDirectory();
  } catch {
    throw new ModelFileError(`${full}: no such file or folder`, full);
  }
  if (isDir) {
    // Same preference as HF transformers: a single file wins over an index.
    if (existsSync(join(full, SINGLE_FILE))) return openSingle(join(full, SINGLE_FILE));
    if (existsSync(join(full, INDEX_FILE))) return openSharded(join(full, INDEX_FILE));
    throw new ModelFileError(`${full}: folder holds neither ${SINGLE_FILE} nor ${INDEX_FILE}`, full);
  }
  return full.endsWith(".index.json") ? openSharded(full) : openSingle(full);
}

/** One open .safetensors file and its parsed header. */
interface Shard {
  path: string;
  fd: number;
  tensors: Map<string, TensorInfo>;
}

interface Entry {
  info: TensorInfo;
  shard: Shard;
}

class Checkpoint implements SafetensorsModel {
  readonly tensorNames: string[];
  private closed = false;

  /** `source` names the checkpoint in messages: the file, or the index of a sharded one. */
  constructor(
    private readonly source: string,
    private readonly entries: Map<string, Entry>,
    private readonly shards: Shard[],
  ) {
    this.tensorNames = [...entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const { info } = this.entry(name);
    return { ...info, shape: [...info.shape] };
  }

  read(name: string): RawTensor {
    const { info, shard } = this.entry(name);
    if (this.closed) throw new ModelFileError(`${this.source}: cannot read tensor "${name}": closed`, info.file, name);
    const data = new Uint8Array(info.byteLength);
    readFully(shard.fd, data, info.offset, info.file, name);
    return { dtype: info.dtype, shape: [...info.shape], data };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.shards) closeSync(s.fd);
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) {
      const n = this.entries.size;
      throw new ModelFileError(`tensor "${name}" not found in ${this.source} (${n} tensors)`, this.source, name);
    }
    return e;
  }
}

function openSingle(path: string): SafetensorsModel {
  const shard = openShard(path);
  const entries = new Map<string, Entry>();
  for (const info of shard.tensors.values()) entries.set(info.name, { info, shard });
  return new Checkpoint(path, entries, [shard]);
}

function openSharded(indexPath: string): SafetensorsModel {
  const weightMap = readWeightMap(indexPath);
  const dir = dirname(indexPath);
  const shards = new Map<string, Shard>();
  const entries = new Map<string, Entry>();
  try {
    for (const [name, shardName] of Object.entries(weightMap)) {
      if (typeof shardName !== "string" || shardName === "") {
        throw new ModelFileError(
          `${indexPath}: tensor "${name}": weight_map value is not a file name`,
          indexPath,
          name,
        );
      }
      const shardPath = resolve(dir, shardName);
      const rel = relative(dir, shardPath);
      // The index is data, not code: don't let it point at files outside the model folder.
      if (rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
        throw new ModelFileError(
          `${indexPath}: tensor "${name}": shard "${shardName}" is outside the model folder`,
          indexPath,
          name,
        );
      }
      let shard = shards.get(shardPath);
      if (!shard) {
        if (!existsSync(shardPath)) {
          throw new ModelFileError(
            `${indexPath}: shard ${shardName} (holding tensor "${name}") is missing: ${shardPath}`,
            shardPath,
            name,
          );
        }
        shard = openShard(shardPath);
        shards.set(shardPath, shard);
      }
      const info = shard.tensors.get(name);
      if (!info) {
        throw new ModelFileError(
          `${shardPath}: tensor "${name}" is listed in ${basename(indexPath)} but absent from this shard`,
          shardPath,
          name,
        );
      }
      entries.set(name, { info, shard });
    }
  } catch (e) {
    for (const s of shards.values()) closeSync(s.fd);
    throw e;
  }
  return new Checkpoint(indexPath, entries, [...shards.values()]);
}

function readWeightMap(indexPath: string): Record<string, unknown> {
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexPath, "utf8"));
  } catch (e) {
    throw new ModelFileError(`${indexPath}: cannot read index: ${(e as Error).message}`, indexPath);
  }
  const weightMap = isObject(index) ? index.weight_map : undefined;
  if (!isObject(weightMap)) throw new ModelFileError(`${indexPath}: missing or invalid "weight_map"`, indexPath);
  return weightMap;
}

/** Open one .safetensors file and validate its header; the fd is closed again if anything is wrong. */
function openShard(path: string): Shard {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new ModelFileError(`${path}: cannot open: ${(e as Error).message}`, path);
  }
  try {
    return { path, fd, tensors: parseHeader(fd, path) };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Read and validate a file's header; returns its tensors in header order. */
function parseHeader(fd: number, file: string): Map<string, TensorInfo> {
  // Returned, not thrown, so that each `throw bad(...)` narrows types for the code after it.
  const bad = (msg: string, tensor?: string) =>
    new ModelFileError(tensor === undefined ? `${file}: ${msg}` : `${file}: tensor "${tensor}": ${msg}`, file, tensor);
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8) throw bad(`truncated: ${fileSize} bytes, too short for the 8-byte header length`);
  const lenBytes = Buffer.alloc(8);
  readFully(fd, lenBytes, 0, file);
  const headerLen64 = lenBytes.readBigUInt64LE(0);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) {
    throw bad(`header length ${headerLen64} bytes is absurd (limit ${MAX_HEADER_BYTES}); not a safetensors file?`);
  }
  const headerLen = Number(headerLen64);
  if (8 + headerLen > fileSize)
    throw bad(`truncated: header length ${headerLen} runs past the end of the file (${fileSize} bytes)`);

  const headerBytes = new Uint8Array(headerLen);
  readFully(fd, headerBytes, 8, file);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw bad(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(header)) throw bad("header is not a JSON object");

  const dataStart = 8 + headerLen;
  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isObject(entry)) throw bad(`"__metadata__" is not an object`);
      continue;
    }
    if (!isObject(entry)) throw bad("entry is not an object", name);
    if (typeof entry.dtype !== "string") throw bad(`missing or invalid "dtype"`, name);
    const dt = DTYPES.get(entry.dtype);
    if (!dt)
      throw bad(`unsupported dtype ${JSON.stringify(entry.dtype)} (supported: ${[...DTYPES.keys()].join(", ")})`, name);
    const { dtype, size } = dt;
    const shape: unknown = entry.shape;
    if (!Array.isArray(shape)) throw bad(`missing or invalid "shape"`, name);
    if (!shape.every(isCount))
      throw bad(`invalid shape ${JSON.stringify(shape)}: dims must be non-negative integers`, name);
    const offs = entry.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isCount)) {
      throw bad(`missing or invalid "data_offsets" (want [begin, end]): ${JSON.stringify(offs)}`, name);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) throw bad(`data_offsets [${begin}, ${end}]: begin is after end`, name);
    if (end > dataSize) {
      throw bad(
        `data_offsets [${begin}, ${end}] run past the end of the file (data section is ${dataSize} bytes)`,
        name,
      );
    }
    // BigInt: a corrupt shape's element count can pass 2^53, where numbers stop being exact.
    const numel = shape.reduce((n, d) => n * BigInt(d), 1n);
    if (numel * BigInt(size) !== BigInt(end - begin)) {
      throw bad(
        `shape ${JSON.stringify(shape)} of ${entry.dtype} needs ${numel * BigInt(size)} bytes but data_offsets ` +
          `[${begin}, ${end}] hold ${end - begin}`,
        name,
      );
    }
    tensors.set(name, { name, dtype, shape, file, offset: dataStart + begin, byteLength: end - begin });
  }

  // No two tensors may share bytes. Empty tensors occupy none, so they can sit anywhere.
  const byOffset = [...tensors.values()].filter((t) => t.byteLength > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1];
    const cur = byOffset[i];
    if (cur.offset < prev.offset + prev.byteLength) {
      const range = (t: TensorInfo) => `[${t.offset - dataStart}, ${t.offset - dataStart + t.byteLength}]`;
      throw bad(`data_offsets ${range(cur)} overlap tensor "${prev.name}" ${range(prev)}`, cur.name);
    }
  }
  return tensors;
}

/** Fill `buf` from `fd` at `position`, in chunks; a short read means the file shrank since it was opened. */
function readFully(fd: number, buf: Uint8Array, position: number, file: string, tensor?: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, Math.min(READ_CHUNK, buf.length - done), position + done);
    if (n === 0) {
      const what = tensor === undefined ? "" : ` tensor "${tensor}":`;
      throw new ModelFileError(`${file}:${what} unexpected end of file at byte ${position + done}`, file, tensor);
    }
    done += n;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A non-negative integer that a JS number holds exactly. */
function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}
