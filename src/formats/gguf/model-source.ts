/**
 * A GGUF file seen as a Hugging Face checkpoint: HF tensor names and shapes, q/k rows un-permuted
 * (llama arch), Gemma's stored (1 + w) norms turned back into w, every type decoded or repacked.
 *
 *   F32, F16, BF16   handed over as they are (the backend converts)
 *   Q8_0, Q4_0       `readQuantized` repacks them losslessly into int8/int4 (quant.ts) for a backend that
 *                    takes pre-quantized weights; `read` decodes them exactly to f32 for one that does not
 *   Q4_K, Q6_K       decoded to f32 at load (one log line per type); preferred storage f16
 *   anything else    ModelFileError naming the tensor and its type
 */
import { basename } from "node:path";
import type { HostTensor, StorageDType } from "../../backends/backend.ts";
import { hostF32 } from "../dtype.ts";
import { ModelFileError } from "../model-file-error.ts";
import type { QuantizedMatrix } from "../quant.ts";
import { GGUF_ARCHS, type GgufArch, ggufToHfName, hfToGgufName, isNormWeight, permuteQKRows, qkHeads } from "./arch.ts";
import { DECODABLE_TYPES, dequantize, q4_0ToInt4, q8_0ToInt8 } from "./blocks.ts";
import { type GgufFile, type GgufTensorInfo, show } from "./reader.ts";
import { GgmlType } from "./types.ts";

const PREFERRED: Record<number, StorageDType> = {
  [GgmlType.F32]: "f32",
  [GgmlType.F16]: "f16",
  [GgmlType.BF16]: "bf16",
  [GgmlType.Q8_0]: "int8",
  [GgmlType.Q4_0]: "int4",
  [GgmlType.Q4_K]: "f16",
  [GgmlType.Q6_K]: "f16",
};

export class GgufTensorSource {
  /** HF names of the tensors that have one, in file order. */
  readonly tensorNames: string[];
  readonly #byHf = new Map<string, GgufTensorInfo>();
  readonly #logged = new Set<number>();

  readonly arch: GgufArch;

  constructor(
    readonly file: GgufFile,
    private readonly numHeads: number,
    private readonly numKvHeads: number,
    private readonly log: (line: string) => void,
  ) {
    const name = file.string("general.architecture") ?? "";
    const arch = GGUF_ARCHS.get(name);
    if (!arch) throw new ModelFileError(`${file.path}: unsupported GGUF architecture ${show(name)}`, file.path);
    this.arch = arch;
    for (const t of file.tensors.values()) {
      const hf = ggufToHfName(t.name);
      if (hf !== null) this.#byHf.set(hf, t);
    }
    this.tensorNames = [...this.#byHf.keys()];
  }

  has(name: string): boolean {
    return this.#byHf.has(name);
  }

  #tensor(name: string): GgufTensorInfo {
    const t = this.#byHf.get(name);
    if (!t) {
      const g = hfToGgufName(name);
      const what = g === null ? `${show(name)}` : `${show(g)} (${name})`;
      throw new ModelFileError(`${this.file.path}: tensor ${what} not found`, this.file.path, g ?? name);
    }
    return t;
  }

  info(name: string): { shape: readonly number[]; dtype: string; file: string } {
    const t = this.#tensor(name);
    return { shape: t.shape, dtype: t.typeInfo.name.toLowerCase(), file: this.file.path };
  }

  preferredStorage(name: string): StorageDType {
    return PREFERRED[this.#tensor(name).type] ?? "f32";
  }

  /** Raw bytes with q/k rows back in HF order. */
  #bytes(name: string, t: GgufTensorInfo): Uint8Array {
    const raw = this.file.readTensorBytes(t.name);
    const heads = this.arch.permuteQK ? qkHeads(name, this.numHeads, this.numKvHeads) : null;
    if (heads === null) return raw;
    const rows = t.shape.length === 2 ? t.shape[0] : t.numElements;
    if (rows % heads !== 0 || (rows / heads) % 2 !== 0) {
      throw new ModelFileError(
        `${this.file.path}: tensor ${show(t.name)}: ${rows} rows cannot be ${heads} heads of even size`,
        this.file.path,
        t.name,
      );
    }
    // A bias is a column of 1-element rows; permute it as such.
    return permuteQKRows(raw, rows, heads, "toHf");
  }

  readQuantized(name: string): QuantizedMatrix | null {
    const t = this.#tensor(name);
    if (t.shape.length !== 2 || (t.type !== GgmlType.Q8_0 && t.type !== GgmlType.Q4_0)) return null;
    const [rows, cols] = t.shape;
    const bytes = this.#bytes(name, t);
    return t.type === GgmlType.Q8_0 ? q8_0ToInt8(bytes, rows, cols) : q4_0ToInt4(bytes, rows, cols);
  }

  read(name: string): HostTensor {
    const t = this.#tensor(name);
    if (!DECODABLE_TYPES.includes(t.type)) {
      throw new ModelFileError(
        `${this.file.path}: tensor ${show(t.name)} has type ${t.typeInfo.name}, which is not supported ` +
          "(F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K are)",
        this.file.path,
        t.name,
      );
    }
    const bytes = this.#bytes(name, t);
    const normOffset = this.arch.normPlusOne && isNormWeight(name);
    if (!normOffset && (t.type === GgmlType.F32 || t.type === GgmlType.F16 || t.type === GgmlType.BF16)) {
      const dtype = t.type === GgmlType.F32 ? "f32" : t.type === GgmlType.F16 ? "f16" : "bf16";
      return { dtype, shape: t.shape, data: bytes };
    }
    if ((t.type === GgmlType.Q4_K || t.type === GgmlType.Q6_K) && !this.#logged.has(t.type)) {
      this.#logged.add(t.type);
      this.log(
        `loom: ${basename(this.file.path)}: ${t.typeInfo.name} tensors are dequantized at load (no ${t.typeInfo.name} kernels)`,
      );
    }
    const values = dequantize(t.type, bytes, t.numElements);
    if (normOffset) {
      // Gemma GGUFs store 1 + w; the graph multiplies by (1 + w) itself.
      for (let i = 0; i < values.length; i++) values[i] = Math.fround(values[i] - 1);
    }
    return hostF32(values, t.shape);
  }

  close(): void {
    this.file.close();
  }
}
