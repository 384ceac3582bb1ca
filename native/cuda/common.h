// Shared definitions of the CUDA backend: enums (numbered as src/backends/cuda/addon.ts numbers them), the
// device views of weights and KV pools that host code hands to kernels, and error checking.
//
// This header is included by host-only translation units (.cc, compiled by the host compiler through
// nvcc) and by kernel units (.cu), so it holds no device code.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace loom_cuda {

/** Weight storage (matches STORAGE in cuda-backend.ts and the CPU backend). */
enum StorageType { ST_F32 = 0, ST_F16 = 1, ST_BF16 = 2, ST_INT8 = 3, ST_INT4 = 4 };
/** Checkpoint dtype of bytes handed to weight(). */
enum SrcType { SRC_F32 = 0, SRC_F16 = 1, SRC_BF16 = 2 };
/** KV cache element type. */
enum KvType { KV_F32 = 0, KV_BF16 = 1, KV_F16 = 2, KV_INT8 = 3 };
enum ActType { ACT_SILU = 0, ACT_GELU_TANH = 1 };

/** Quantization group (src/formats/quant.ts QGROUP). */
constexpr int QGROUP = 32;
/** Largest head dimension the attention kernels take (registers per lane: 256 / 32 = 8). */
constexpr int MAX_HEAD_DIM = 256;

/** A CUDA or cuBLAS failure, surfaced to JS as an Error with this message. */
struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    // Clear a sticky-free error so that the next call does not report it again.
    cudaGetLastError();
    throw CudaError(std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
  }
}
#define LOOM_CHECK(expr) ::loom_cuda::check((expr), #expr)
/** After a kernel launch: reports a bad configuration now (execution errors surface at the next sync). */
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline long ceil_div(long a, long b) { return (a + b - 1) / b; }
inline int round_up(int a, int b) { return (a + b - 1) / b * b; }

/**
 * A weight matrix on the device, HF layout [N, K] (y = x · Wᵀ), each row padded to Kp = roundUp(K, 32):
 *
 *   f32/f16/bf16: data = N × Kp elements (padding is zero)
 *   int8:         data = N × Kp int8 codes;      scales = N × G f32 (d per group)       G = Kp / 32
 *   int4:         data = N × Kp/2 bytes;         scales = N × G × 2 f32 (d, min per group)
 *                 byte j of a group: element j in the low nibble, element j+16 in the high nibble
 *
 * The arithmetic of dequantization is src/formats/quant.ts's: int8 x̂ = fround(q·d), int4
 * x̂ = fround(fround(q·d) + m) (kernels use __fmul_rn/__fadd_rn so that no FMA contraction changes it).
 */
struct WeightView {
  int storage;
  int N;
  int K;
  int Kp;
  const void* data;
  const float* scales;
};

/**
 * One layer's paged KV pools: K and V are [numBlocks][blockSize][numKvHeads][headDim] of `dtype`; for int8
 * kScale/vScale hold one f32 scale per (slot, kv head): [numBlocks * blockSize][numKvHeads].
 */
struct KvView {
  int dtype;
  int numBlocks;
  int blockSize;
  int numKvHeads;
  int headDim;
  void* k;
  void* v;
  float* kScale;
  float* vScale;
};

/**
 * Where the sections of the packed step metadata live in the device meta buffer (int offsets); written by
 * src/backends/cuda/step-pack.ts, fixed for as long as the buffer's capacity does not change (CUDA graphs
 * bake these pointers in).
 */
struct MetaLayout {
  int tokenIds;
  int positions;
  int slotMapping;
  int queryStart;
  int seqLens;
  int blockTables;
  /** Row stride of the block tables (≥ the step's maxBlocksPerSeq). */
  int blockTableStride;
  int decodeSeqs;
  int tileSeq;
  int tileQ0;
  int capacity;
};

/** Device pointers of one step's metadata (the meta buffer + a MetaLayout). */
struct StepPtrs {
  const int* tokenIds;
  const int* positions;
  const int* slotMapping;
  const int* queryStart;
  const int* seqLens;
  const int* blockTables;
  int blockTableStride;
  const int* decodeSeqs;
  const int* tileSeq;
  const int* tileQ0;
};

/** Query rows per prefill attention tile (4 warps × 4 rows); step-pack.ts PREFILL_TILE must equal it. */
constexpr int PREFILL_TILE_Q = 16;

}  // namespace loom_cuda
