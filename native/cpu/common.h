// Shared types of the native CPU backend: storage codes, weights, KV layers, step metadata, and the
// per-ISA kernel table that the dispatcher picks at load (kernels_scalar.cc / kernels_avx2.cc /
// kernels_avx512.cc each fill one).
//
// Everything here is plain data plus `static inline` helpers (internal linkage), so that including it
// in translation units compiled with different -m flags never lets the linker merge an AVX-512 copy of
// a helper into the portable path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../common/quant_spec.h"

namespace loom {

enum Storage : int { ST_F32 = 0, ST_F16 = 1, ST_BF16 = 2, ST_INT8 = 3, ST_INT4 = 4 };
enum KvType : int { KV_F32 = 0, KV_BF16 = 1, KV_F16 = 2, KV_INT8 = 3 };
enum Act : int { ACT_SILU = 0, ACT_GELU_TANH = 1 };

/** Quantization group (int8 and int4) and the padding unit of every matrix row. */
constexpr int QGROUP = 32;

static inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

/**
 * A weight matrix [N, K] (HF layout) or a vector (N = length, K = 0, always f32).
 * Rows are padded with zeros to Kp = round_up(K, 32) so kernels never handle a K tail.
 *   f32/f16/bf16: data = [N][Kp] elements
 *   int8:  row n = Kp int8 codes, then its Kp/32 f16 scales (Q8_0's sizes)    (x ≈ q·d)
 *   int4:  row n = Kp/2 bytes of codes, then its Kp/32 (d, m) f32 pairs      (x ≈ q·d + m)
 *          byte j of a group holds element j in its low nibble and element j+16 in its high nibble.
 * A quantized row keeps its scales next to its codes (rows padded to 32 bytes) so that a GEMV streams one
 * sequential range per row instead of two (separate scale arrays: 4–6% slower over the 360M shape's GEMVs).
 * Row n starts at data + n·rowBytes; `scales` points at row 0's scales, row n's are rowBytes further.
 *
 * int8 and int4 in panels (`panels` set; the avx512 build on AVX512-VNNI CPUs, quant_panels.inc): rows in
 * panels of QP_ROWS = 16 (the last one padded with zero rows), a panel's Kp/32 groups one after another, each
 * 8 chunks of 4 of the group's columns (chunk j: columns 4j..4j+3) for the 16 rows (row i's 4 codes at bytes
 * 4i..4i+3 of the chunk), then the 16 rows' scales:
 *   int8 (544 bytes a group): chunk j = 64 bytes at 64j, codes stored unsigned (q + 128); then 16 f16 d
 *   int4 (384 bytes a group): chunks 2b and 2b+1 share the 64 bytes at 64b, chunk 2b in the low nibbles and
 *        2b+1 in the high ones; then 16 f32 d and 16 f32 m
 * A 64-byte chunk is then 4 unsigned codes per row and lane, so one vpdpbusd against 4 broadcast int8
 * activation codes adds 4 products to each of the 16 rows' sums, without a horizontal add. rowBytes = a
 * group's bytes / 16 · Kp/32 (panel p is the rows [16p, 16p+16) × rowBytes bytes from p·16·rowBytes), `scales`
 * is null.
 */
struct MatW {
  int storage;
  int N, K, Kp;
  const void* data;
  const void* scales;  // int8/int4 only: row 0's (f16 for int8, f32 pairs for int4)
  size_t rowBytes;
  bool panels = false;
};

/** The panel layout (MatW): rows per panel and bytes per group of a panel. */
constexpr int QP_ROWS = 16;
constexpr size_t QP_GROUP_BYTES_INT8 = 544, QP_GROUP_BYTES_INT4 = 384;
/** Where a panel group keeps its scales: int8 16 f16 d after the codes; int4 16 f32 d, then 16 f32 m. */
constexpr size_t QP_INT8_D = 512, QP_INT4_D = 256, QP_INT4_M = 320;
/** Byte of a panel group holding row i's code of column k (chunk k/4): int8 (stored as q + 128). */
constexpr size_t qp_int8_byte(int k, int i) { return 64 * (size_t)(k / 4) + 4 * (size_t)i + (size_t)(k % 4); }
/** int4: chunks 2b and 2b + 1 share block b's bytes, chunk 2b in the low nibbles (qp_int4_high: the high). */
constexpr size_t qp_int4_byte(int k, int i) { return 64 * (size_t)(k / 8) + 4 * (size_t)i + (size_t)(k % 4); }
constexpr bool qp_int4_high(int k) { return (k / 4) % 2 == 1; }
/** Planes of int8 activation codes the panels multiply (KernelTable::qpPrep): int8 weights two (~int16
 * precision), int4 one. */
constexpr int qp_act_terms(int storage) { return storage == ST_INT8 ? 2 : 1; }
/** Floats of one activation row prepared for the panels (KernelTable::qpPrep). */
static inline size_t qp_x_floats(int Kp, int terms) { return (size_t)terms * Kp / 4 + 2 * (size_t)(Kp / 32); }
/** Panel p's first group. */
static inline const char* mat_panel(const MatW& w, size_t p) {
  return static_cast<const char*>(w.data) + p * QP_ROWS * w.rowBytes;
}

/** Bytes of one stored row of a matrix with Kp columns (codes and, for int8/int4, its scales). */
static inline size_t mat_row_bytes(int storage, int Kp) {
  const size_t G = (size_t)Kp / QGROUP;
  switch (storage) {
    case ST_F32: return (size_t)Kp * 4;
    case ST_F16:
    case ST_BF16: return (size_t)Kp * 2;
    case ST_INT8: return ((size_t)Kp + G * 2 + 31) / 32 * 32;
    default: return ((size_t)Kp / 2 + G * 8 + 31) / 32 * 32;  // int4
  }
}
/** Bytes of codes at the start of a quantized row (its scales follow). */
static inline size_t mat_code_bytes(int storage, int Kp) { return storage == ST_INT4 ? (size_t)Kp / 2 : (size_t)Kp; }
/** Row n's codes (int8/int4) or elements. */
template <class T>
static inline const T* mat_row(const MatW& w, size_t n) {
  return reinterpret_cast<const T*>(static_cast<const char*>(w.data) + n * w.rowBytes);
}
/** Row n's scales: int8 d per group as f16 (T = uint16_t); int4 (d, m) per group as f32 (T = float). */
template <class T>
static inline const T* mat_scales(const MatW& w, size_t n) {
  return reinterpret_cast<const T*>(static_cast<const char*>(w.scales) + n * w.rowBytes);
}

/** One layer's paged KV storage: pool[block][slot][kvHead][headDim]; int8 has a scale per (slot, head). */
struct KvLayerT {
  int numBlocks, blockSize, numKvHeads, headDim, dtype;
  size_t elems;  // numBlocks * blockSize * numKvHeads * headDim
  void* k;
  void* v;
  float* kScale;  // int8 only: [numBlocks * blockSize * numKvHeads]
  float* vScale;
};

static inline size_t kv_elem_bytes(int dtype) { return dtype == KV_F32 ? 4 : dtype == KV_INT8 ? 1 : 2; }

/** One attention work item: query tokens [t0, t1) of sequence `seq`, all query heads of kv head `kvh`. */
struct AttnTask {
  int seq, kvh, t0, t1;
};

struct AttnArgs {
  const float* qkv;
  int rowStride;
  float* out;
  const KvLayerT* kv;
  int numHeads, numKvHeads, headDim;
  float scale;
  int window;
  float softcap;
  const int32_t* queryStart;
  const int32_t* seqLens;
  const int32_t* blockTables;
  int maxBlocksPerSeq;
};

static inline size_t gemv_prep_floats(int rows, int Kp) { return (size_t)rows * Kp + (size_t)rows * (Kp / QGROUP); }

/** Query tokens per attention tile (times the GQA group = rows of one tile). */
constexpr int ATTN_BK = 32;  // keys per block of the online softmax

/**
 * Floats of scratch one attention tile needs for `rows` query rows: the vector kernels' (output, running
 * max and sum, scores, a key block as f32 and transposed) or the AMX prefill tile's (amx_attention.inc:
 * output, max and sum, q as bf16 hi + mid in whole 16-row tiles, the block's Kᵀ and V tiles, P·V results,
 * S and P, 64-byte alignment), whichever is larger.
 */
static inline size_t attn_scratch_floats(int rows, int headDim) {
  const size_t r = (size_t)rows, d = (size_t)headDim;
  const size_t vec = r * d + r * (1 + 16) + r * ATTN_BK + 3 * (size_t)ATTN_BK * d + 64;  // sums: 16 lanes a row
  const size_t amx = r * d + 2 * r + (r + 15) / 16 * 16 * d + 48 * d + 1024 + 64;
  return vec > amx ? vec : amx;
}

/** Activation rows per block of bf16 planes (KernelTable::packBf16Planes). */
constexpr int PLANE_ROWS = 16;

/** Packed activations for one AMX call: `blocks` 16-row blocks from packBf16Planes, `rows` valid rows in all. */
struct AmxX {
  const uint16_t* planes;
  size_t planeStride;  // bf16 elements from one block's planes to the next
  int blocks, rows;
};

/** The ISA-specific kernels. Drivers (matmul.cc, attention.cc, …) do the threading and call these. */
struct KernelTable {
  const char* name;
  /** GEMM register tile: rows per packed activation tile (MR) and weight rows per panel (NR). */
  int gemmMR, gemmNR;
  /** Rows up to which matmul uses gemv (4, or 8 with 32 vector registers). */
  int gemvMaxRows;
  /**
   * Prepares `rows` (≤ gemvMaxRows) activation rows (stride ldx, K valid columns) for gemv with weights of `storage`:
   * dst = rows × Kp floats, zero-padded (bf16: permuted within blocks to match the kernel's even/odd
   * split), then for int4 rows × Kp/32 group sums. dst holds gemv_prep_floats(rows, Kp) floats.
   */
  void (*gemvPrep)(int storage, const float* x, int ldx, int K, int Kp, int rows, float* dst);
  /** y[r*ldy + n] = x[r]·W[n] (+bias[n]) for r < rows (≤ gemvMaxRows), n in [n0, n1); x from gemvPrep. */
  void (*gemv)(const MatW& w, const float* x, int rows, float* y, int ldy, const float* bias, int n0, int n1);
  /** How many weight rows gemv with `rows` activation rows streams side by side: a thread's rows [n0, n1)
   * are cut into that many equal runs, read in step (row n0 + j + c·(n1-n0)/streams for c < streams). */
  int (*gemvStreams)(int storage, int rows);
  /** Dequantize rows [n0, n0+cnt) of W into f32 dst[cnt][Kp]. */
  void (*dequantRows)(const MatW& w, int n0, int cnt, float* dst);
  /** Pack rows [m0, m0+rows) of x (stride ldx, K valid columns) into dst[Kp][MR], zero-padded. */
  void (*packX)(const float* x, int ldx, int K, int Kp, int m0, int rows, float* dst);
  /** y[r*ldy + c] (+)= Σ_k xt[k*MR + r] · w[c*ldw + k] (+bias[c]) for r < rows (≤ MR), c < cols (≤ NR). */
  void (*gemmTile)(const float* xt, int Kp, const float* w, int ldw, float* y, int ldy, int rows, int cols,
                   const float* bias);
  /** out = rmsnorm(x) * (w or 1+w) over dim. */
  void (*rmsNorm)(float* out, const float* x, const float* w, int dim, float eps, bool plusOne);
  /** res += x; out = rmsnorm(res) * (w or 1+w). */
  void (*addRmsNorm)(float* out, float* res, const float* x, const float* w, int dim, float eps, bool plusOne);
  /** out[i] = act(gu[i]) * gu[inter + i]. */
  void (*gatedAct)(float* out, const float* gu, int inter, int act);
  /** Rotate-half rope on `numHeads` heads of `headDim` starting at x, using cos/sin[half]. */
  void (*rope)(float* x, int numHeads, int headDim, int half, const float* cosv, const float* sinv);
  /** a += b. */
  void (*add)(float* a, const float* b, size_t n);
  /** One attention tile (online softmax over key blocks). scratch: attn_scratch_floats(rows, headDim). */
  void (*attentionTile)(const AttnArgs& a, const AttnTask& t, float* scratch);
  /** One K or V row into a KV pool slot of KV type `dtype` (kv_elem_bytes(dtype) each), as quant_spec.h
   * converts (int8: quantize_int8_group) bit for bit; returns the row's scale (int8) or 1. */
  float (*storeKvRow)(int dtype, const float* x, int n, void* dst);
  /** x[0, n) as bf16 (quant_spec.h's f32_to_bf16, bit for bit): bf16 weights at load, bf16 KV rows. */
  void (*toBf16Row)(const float* x, int n, uint16_t* d);
  /** A weight row as int8 codes [Kp] and f16 scales [Kp/32] (quant_spec.h's arithmetic, bit for bit). */
  void (*quantInt8Row)(const float* x, int K, int Kp, int8_t* q, uint16_t* scales);
  /** A weight row as int4 codes [Kp/2] and (d, m) f32 pairs [Kp/32] (quant_spec.h's arithmetic, bit for bit). */
  void (*quantInt4Row)(const float* x, int K, int Kp, uint8_t* q, float* dm);
  /** Streams n bytes (multiple of 256) and returns a checksum (bandwidth probe). */
  float (*streamRead)(const void* p, size_t n);

  // ---- bf16 dot products (bf16_planes.inc: the amx and avx512 builds; nullptr in the others)
  /** Packs ≤ 16 rows of x into the first `terms` bf16 planes (hi, mid, lo) of [Kp/2][16][2], Kp·16 apart. */
  void (*packBf16Planes)(const float* x, int ldx, int K, int Kp, int rows, int terms, uint16_t* planes);
  // ---- AMX GEMM (amx_gemm.inc; nullptr for every other ISA). Blocks: 16 activation rows × 32 weight rows.
  /**
   * Weight rows [n0, n0+cnt) (cnt ≤ 32) as bf16 [32][Kp], zero beyond cnt: bf16 values, int8/int4 as
   * bf16(x̂) of their dequantized value, f16 as two panels (hi, lo).
   */
  void (*amxPanel)(const MatW& w, int n0, int cnt, uint16_t* dst);
  /**
   * y[m][c] = x[m]·W[c] (+bias[c]), m < x.rows ≤ 16·x.blocks, c < cols ≤ 32; a = those 32 weight rows as
   * bf16 (stride lda: the weights in place or amxPanel). Meanwhile prefetches [pf, pf + pfBytes) to L2 (pf
   * may be null).
   */
  void (*amxBlock)(const MatW& w, const uint16_t* a, int lda, const AmxX& x, float* y, int ldy, int cols,
                   const float* bias, const char* pf, size_t pfBytes);
  // ---- AVX512-VNNI (quant_panels.inc; nullptr in the other builds; used only where cpu_supports_avx512_vnni())
  /** An activation row as the panels of `storage` multiply it: qp_x_floats(Kp, qp_act_terms(storage)) floats. */
  void (*qpPrep)(int storage, const float* x, int K, int Kp, float* row);
  /**
   * int8/int4 weights in panels (MatW.panels), GEMV and GEMM alike: y[r*ldy + n] = x[r]·W[n] (+bias[n]) for r < rows,
   * n in [n0, n1) (n0 a multiple of 16); activation row r at xp + r·xstride as qpPrep wrote it. Every output is
   * computed the same way whatever `rows` is.
   */
  void (*qpRows)(const MatW& w, const float* xp, size_t xstride, int rows, float* y, int ldy, const float* bias,
                 int n0, int n1);
  // ---- AVX512-BF16 GEMM (bf16_dot.inc; nullptr in the other builds; used only where cpu_supports_avx512_bf16())
  /**
   * bf16 weights in place: y[r*ldy + c] = x[r]·W[n0 + c] (+bias[c]) for r < rows ≤ 32, c < cols ≤ 12, x as
   * BF16_DOT_BLOCKS 16-row blocks of hi and mid planes (packBf16Planes, blockElems bf16 apart).
   */
  void (*bf16Dot)(const uint16_t* planes, size_t blockElems, const MatW& w, int n0, float* y, int ldy, int rows,
                  int cols, const float* bias);
};

/** The AMX GEMM handles these storages (others use the AVX-512 GEMM). */
static inline bool amx_storage(int storage) {
  return storage == ST_BF16 || storage == ST_F16 || storage == ST_INT8 || storage == ST_INT4;
}

/** Activation planes the AMX tiles of a storage read (amx_gemm.inc): hi + mid + lo for f16, hi + mid for bf16,
 * hi alone for int8/int4 (W8A16 in bf16). packBf16Planes writes that many. */
static inline int amx_planes(int storage) { return storage == ST_F16 ? 3 : storage == ST_BF16 ? 2 : 1; }

const KernelTable* kernels_scalar();
const KernelTable* kernels_avx2();   // nullptr when not compiled for x86-64
const KernelTable* kernels_avx512(); // nullptr when not compiled for x86-64
const KernelTable* kernels_amx();    // AVX-512 + AMX-BF16 GEMM; nullptr when not compiled for x86-64

// ---- scalar conversions and the quant.ts quantizers (bit-exact with src/formats; shared with native/cuda) ----
using loom_spec::bf16_to_f32;
using loom_spec::bits_to_f32;
using loom_spec::f16_to_f32;
using loom_spec::f32_to_bf16;
using loom_spec::f32_to_bits;
using loom_spec::f32_to_f16;
using loom_spec::quantize_int4_group;
using loom_spec::int4_group_range;
using loom_spec::int4_group_scale;
using loom_spec::int8_group_scale;
using loom_spec::quant_code;
using loom_spec::quantize_int8_group;
using loom_spec::round_half_up;

}  // namespace loom
