/**
 * GGUF constants: metadata value types and ggml tensor types with their block geometry.
 *
 * A ggml tensor type stores elements in blocks of `blockSize` elements taking `typeSize` bytes; a row of
 * ne0 elements (ne0 a multiple of blockSize) takes ne0 / blockSize * typeSize bytes. The table lists every
 * type llama.cpp defines (so that files holding types we cannot decode still parse, and fail only when such
 * a tensor is loaded); `decodable` marks the ones src/formats/gguf/blocks.ts can turn into floats.
 */

/** Metadata value types (gguf_type). */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

/** Bytes of one scalar of each fixed-size value type; strings and arrays are variable. */
export const VALUE_TYPE_SIZE: Readonly<Record<number, number>> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};

export const VALUE_TYPE_NAME: Readonly<Record<number, string>> = {
  0: "u8",
  1: "i8",
  2: "u16",
  3: "i16",
  4: "u32",
  5: "i32",
  6: "f32",
  7: "bool",
  8: "string",
  9: "array",
  10: "u64",
  11: "i64",
  12: "f64",
};

/** ggml tensor types we read or write by name. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  BF16: 30,
} as const;
export type GgmlType = number;

export interface GgmlTypeInfo {
  name: string;
  blockSize: number;
  typeSize: number;
  /** blocks.ts can decode it to float32. */
  decodable: boolean;
}

/** Every ggml type id llama.cpp defines (ids 4, 5, 31–33, 36–38 were removed upstream and are invalid). */
export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map<number, GgmlTypeInfo>([
  [0, { name: "F32", blockSize: 1, typeSize: 4, decodable: true }],
  [1, { name: "F16", blockSize: 1, typeSize: 2, decodable: true }],
  [2, { name: "Q4_0", blockSize: 32, typeSize: 18, decodable: true }],
  [3, { name: "Q4_1", blockSize: 32, typeSize: 20, decodable: false }],
  [6, { name: "Q5_0", blockSize: 32, typeSize: 22, decodable: false }],
  [7, { name: "Q5_1", blockSize: 32, typeSize: 24, decodable: false }],
  [8, { name: "Q8_0", blockSize: 32, typeSize: 34, decodable: true }],
  [9, { name: "Q8_1", blockSize: 32, typeSize: 36, decodable: false }],
  [10, { name: "Q2_K", blockSize: 256, typeSize: 84, decodable: false }],
  [11, { name: "Q3_K", blockSize: 256, typeSize: 110, decodable: false }],
  [12, { name: "Q4_K", blockSize: 256, typeSize: 144, decodable: true }],
  [13, { name: "Q5_K", blockSize: 256, typeSize: 176, decodable: false }],
  [14, { name: "Q6_K", blockSize: 256, typeSize: 210, decodable: true }],
  [15, { name: "Q8_K", blockSize: 256, typeSize: 292, decodable: false }],
  [16, { name: "IQ2_XXS", blockSize: 256, typeSize: 66, decodable: false }],
  [17, { name: "IQ2_XS", blockSize: 256, typeSize: 74, decodable: false }],
  [18, { name: "IQ3_XXS", blockSize: 256, typeSize: 98, decodable: false }],
  [19, { name: "IQ1_S", blockSize: 256, typeSize: 50, decodable: false }],
  [20, { name: "IQ4_NL", blockSize: 32, typeSize: 18, decodable: false }],
  [21, { name: "IQ3_S", blockSize: 256, typeSize: 110, decodable: false }],
  [22, { name: "IQ2_S", blockSize: 256, typeSize: 82, decodable: false }],
  [23, { name: "IQ4_XS", blockSize: 256, typeSize: 136, decodable: false }],
  [24, { name: "I8", blockSize: 1, typeSize: 1, decodable: false }],
  [25, { name: "I16", blockSize: 1, typeSize: 2, decodable: false }],
  [26, { name: "I32", blockSize: 1, typeSize: 4, decodable: false }],
  [27, { name: "I64", blockSize: 1, typeSize: 8, decodable: false }],
  [28, { name: "F64", blockSize: 1, typeSize: 8, decodable: false }],
  [29, { name: "IQ1_M", blockSize: 256, typeSize: 56, decodable: false }],
  [30, { name: "BF16", blockSize: 1, typeSize: 2, decodable: true }],
  [34, { name: "TQ1_0", blockSize: 256, typeSize: 54, decodable: false }],
  [35, { name: "TQ2_0", blockSize: 256, typeSize: 66, decodable: false }],
  [39, { name: "MXFP4", blockSize: 32, typeSize: 17, decodable: false }],
]);

export function ggmlTypeName(type: number): string {
  return GGML_TYPES.get(type)?.name ?? `type ${type}`;
}

/** Bytes of `n` elements of a ggml type (n must be a multiple of its block size). */
export function ggmlBytes(type: number, n: number): number {
  const info = GGML_TYPES.get(type);
  if (!info) throw new Error(`unknown ggml type ${type}`);
  return (n / info.blockSize) * info.typeSize;
}

/** general.file_type values (llama_ftype) for the types we write. */
export const FileType = {
  ALL_F32: 0,
  MOSTLY_F16: 1,
  MOSTLY_Q4_0: 2,
  MOSTLY_Q8_0: 7,
  MOSTLY_BF16: 32,
} as const;

/** Token types of tokenizer.ggml.token_type (llama_token_type). */
export const TokenType = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** llama.cpp's GGML_MAX_NAME: tensor names must be shorter than this. */
export const GGML_MAX_NAME = 64;
export const GGML_MAX_DIMS = 4;
