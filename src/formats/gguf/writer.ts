/**
 * GGUF writer (version 3, little-endian), laid out exactly as llama.cpp's gguf.cpp expects: metadata in
 * insertion order, tensor infos in insertion order, data section aligned to `general.alignment` (32), each
 * tensor's offset = the running sum of the previous tensors' sizes, each padded to the alignment.
 * (The byte layout is documented at the top of reader.ts.)
 *
 * Tensor data is produced on demand by a callback while writing, so a converter holds one tensor at a time.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgufValueType,
} from "./types.ts";

type Kv =
  | { key: string; type: number; value: number | bigint | boolean | string }
  | {
      key: string;
      type: typeof GgufValueType.ARRAY;
      itemType: number;
      value: readonly (number | string | boolean)[] | ArrayLike<number>;
    };

export interface TensorToWrite {
  name: string;
  type: number;
  /** Row-major shape ([rows, cols] for a matrix); written reversed as ggml's ne. */
  shape: readonly number[];
  byteLength: number;
  /** Produces the tensor's bytes (exactly byteLength of them) when the writer reaches it. */
  data: () => Uint8Array;
}

const encoder = new TextEncoder();

/** Grows as it is written to; little-endian. */
class ByteBuilder {
  #buf = new Uint8Array(1 << 16);
  #view = new DataView(this.#buf.buffer);
  length = 0;
  #room(n: number): number {
    if (this.length + n > this.#buf.length) {
      let size = this.#buf.length * 2;
      while (size < this.length + n) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.#buf.subarray(0, this.length));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u8(v: number): void {
    const at = this.#room(1);
    this.#view.setUint8(at, v);
  }
  i8(v: number): void {
    const at = this.#room(1);
    this.#view.setInt8(at, v);
  }
  u16(v: number): void {
    const at = this.#room(2);
    this.#view.setUint16(at, v, true);
  }
  i16(v: number): void {
    const at = this.#room(2);
    this.#view.setInt16(at, v, true);
  }
  u32(v: number): void {
    const at = this.#room(4);
    this.#view.setUint32(at, v, true);
  }
  i32(v: number): void {
    const at = this.#room(4);
    this.#view.setInt32(at, v, true);
  }
  f32(v: number): void {
    const at = this.#room(4);
    this.#view.setFloat32(at, v, true);
  }
  f64(v: number): void {
    const at = this.#room(8);
    this.#view.setFloat64(at, v, true);
  }
  u64(v: number | bigint): void {
    const at = this.#room(8);
    this.#view.setBigUint64(at, BigInt(v), true);
  }
  i64(v: number | bigint): void {
    const at = this.#room(8);
    this.#view.setBigInt64(at, BigInt(v), true);
  }
  bytes(b: Uint8Array): void {
    const at = this.#room(b.length);
    this.#buf.set(b, at);
  }
  string(s: string): void {
    const b = encoder.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  result(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

function writeScalar(b: ByteBuilder, type: number, v: number | bigint | boolean | string): void {
  switch (type) {
    case GgufValueType.UINT8:
      b.u8(v as number);
      return;
    case GgufValueType.INT8:
      b.i8(v as number);
      return;
    case GgufValueType.UINT16:
      b.u16(v as number);
      return;
    case GgufValueType.INT16:
      b.i16(v as number);
      return;
    case GgufValueType.UINT32:
      b.u32(v as number);
      return;
    case GgufValueType.INT32:
      b.i32(v as number);
      return;
    case GgufValueType.FLOAT32:
      b.f32(v as number);
      return;
    case GgufValueType.BOOL:
      b.u8(v ? 1 : 0);
      return;
    case GgufValueType.STRING:
      b.string(v as string);
      return;
    case GgufValueType.UINT64:
      b.u64(v as number | bigint);
      return;
    case GgufValueType.INT64:
      b.i64(v as number | bigint);
      return;
    case GgufValueType.FLOAT64:
      b.f64(v as number);
      return;
    default:
      throw new Error(`cannot write GGUF value type ${type}`);
  }
}

/** Collects metadata and tensors, then writes a file (or bytes). */
export class GgufWriter {
  readonly #kvs: Kv[] = [];
  readonly #keys = new Set<string>();
  readonly #tensors: TensorToWrite[] = [];
  readonly alignment = GGUF_DEFAULT_ALIGNMENT;

  #add(kv: Kv): this {
    if (this.#keys.has(kv.key)) throw new Error(`GGUF writer: duplicate metadata key "${kv.key}"`);
    this.#keys.add(kv.key);
    this.#kvs.push(kv);
    return this;
  }

  string(key: string, value: string): this {
    return this.#add({ key, type: GgufValueType.STRING, value });
  }
  u32(key: string, value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
      throw new Error(`GGUF writer: "${key}" = ${value} is not a u32`);
    return this.#add({ key, type: GgufValueType.UINT32, value });
  }
  i32(key: string, value: number): this {
    return this.#add({ key, type: GgufValueType.INT32, value });
  }
  f32(key: string, value: number): this {
    return this.#add({ key, type: GgufValueType.FLOAT32, value });
  }
  bool(key: string, value: boolean): this {
    return this.#add({ key, type: GgufValueType.BOOL, value });
  }
  /** Any scalar of an explicit type (for tests that build unusual files). */
  scalar(key: string, type: number, value: number | bigint | boolean | string): this {
    return this.#add({ key, type, value });
  }
  stringArray(key: string, value: readonly string[]): this {
    return this.#add({ key, type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value });
  }
  i32Array(key: string, value: ArrayLike<number>): this {
    return this.#add({ key, type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value });
  }
  f32Array(key: string, value: ArrayLike<number>): this {
    return this.#add({ key, type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value });
  }
  array(key: string, itemType: number, value: readonly (number | string | boolean)[] | ArrayLike<number>): this {
    return this.#add({ key, type: GgufValueType.ARRAY, itemType, value });
  }

  tensor(t: TensorToWrite): this {
    const info = GGML_TYPES.get(t.type);
    if (!info) throw new Error(`GGUF writer: tensor "${t.name}": unknown ggml type ${t.type}`);
    if (encoder.encode(t.name).length >= GGML_MAX_NAME)
      throw new Error(`GGUF writer: tensor name "${t.name}" is too long`);
    if (t.shape.length < 1 || t.shape.length > GGML_MAX_DIMS)
      throw new Error(`GGUF writer: tensor "${t.name}" has ${t.shape.length} dims`);
    const ne0 = t.shape[t.shape.length - 1];
    if (ne0 % info.blockSize !== 0)
      throw new Error(`GGUF writer: tensor "${t.name}": row of ${ne0} is not whole ${info.name} blocks`);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if ((numel / info.blockSize) * info.typeSize !== t.byteLength) {
      throw new Error(
        `GGUF writer: tensor "${t.name}": ${t.byteLength} bytes do not match shape [${t.shape}] of ${info.name}`,
      );
    }
    if (this.#tensors.some((x) => x.name === t.name)) throw new Error(`GGUF writer: duplicate tensor "${t.name}"`);
    this.#tensors.push(t);
    return this;
  }

  get tensors(): readonly TensorToWrite[] {
    return this.#tensors;
  }

  #pad(n: number): number {
    return Math.ceil(n / this.alignment) * this.alignment;
  }

  /** Header, metadata, tensor infos and the padding up to the data section. */
  header(): Uint8Array {
    const b = new ByteBuilder();
    b.u32(GGUF_MAGIC);
    b.u32(3);
    b.u64(this.#tensors.length);
    b.u64(this.#kvs.length);
    for (const kv of this.#kvs) {
      b.string(kv.key);
      b.u32(kv.type);
      if (kv.type === GgufValueType.ARRAY && "itemType" in kv) {
        b.u32(kv.itemType);
        b.u64(kv.value.length);
        for (let i = 0; i < kv.value.length; i++) writeScalar(b, kv.itemType, kv.value[i] as number | string | boolean);
      } else {
        writeScalar(b, kv.type, kv.value as number | bigint | boolean | string);
      }
    }
    let offset = 0;
    for (const t of this.#tensors) {
      b.string(t.name);
      b.u32(t.shape.length);
      for (let d = t.shape.length - 1; d >= 0; d--) b.u64(t.shape[d]);
      b.u32(t.type);
      b.u64(offset);
      offset += this.#pad(t.byteLength);
    }
    while (b.length % this.alignment !== 0) b.u8(0);
    return b.result();
  }

  /** Total file size once written. */
  fileSize(): number {
    return this.header().length + this.#tensors.reduce((a, t) => a + this.#pad(t.byteLength), 0);
  }

  #emit(sink: (bytes: Uint8Array) => void, onTensor?: (index: number, t: TensorToWrite) => void): void {
    sink(this.header());
    const zeros = new Uint8Array(this.alignment);
    this.#tensors.forEach((t, i) => {
      const data = t.data();
      if (data.length !== t.byteLength) {
        throw new Error(`GGUF writer: tensor "${t.name}" produced ${data.length} bytes, expected ${t.byteLength}`);
      }
      sink(data);
      const pad = this.#pad(t.byteLength) - t.byteLength;
      if (pad > 0) sink(zeros.subarray(0, pad));
      onTensor?.(i, t);
    });
  }

  /** Writes the file; `onTensor` is called after each tensor (for progress). */
  write(path: string, onTensor?: (index: number, t: TensorToWrite) => void): void {
    const fd = openSync(path, "w");
    try {
      this.#emit((bytes) => {
        let done = 0;
        while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
      }, onTensor);
    } finally {
      closeSync(fd);
    }
  }

  /** The whole file in memory (tests, small files). */
  toBytes(): Uint8Array {
    const b = new ByteBuilder();
    this.#emit((bytes) => b.bytes(bytes));
    return b.result().slice();
  }
}
