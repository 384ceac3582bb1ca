// Host-callable launchers of every kernel (one .cu file per concept). All launch on `s` and return
// without synchronizing; a bad launch configuration throws CudaError.
#pragma once

#include "common.h"

namespace loom_cuda {

// embed.cu: out[i, :K] = W[tokenIds[i]] * scale (ids outside [0, N) give zero rows).
void launch_embed(cudaStream_t s, float* out, const WeightView& table, const int* tokenIds, int numTokens,
                  float scale);

// norm.cu
/** out[r] = x[r] / rms(x[r]) * (plusOne ? 1 + w : w); out may alias x. */
void launch_rms_norm(cudaStream_t s, float* out, const float* x, const float* w, int rows, int dim, float eps,
                     bool plusOne);
/** residual += x; out = rmsnorm(residual). */
void launch_add_rms_norm(cudaStream_t s, float* out, float* residual, const float* x, const float* w, int rows,
                         int dim, float eps, bool plusOne);
/** In place, numHeads vectors of headDim at `offset` in each row of `rowStride`. */
void launch_head_norm(cudaStream_t s, float* x, int rows, int rowStride, int offset, int numHeads, int headDim,
                      const float* w, float eps, bool plusOne);

// rope.cu: in-place rotate-half RoPE; positions from the step; invFreq has rotaryDim/2 entries on device.
void launch_rope(cudaStream_t s, float* x, int rows, int rowStride, int offset, int numHeads, int headDim,
                 int rotaryDim, const float* invFreq, float attentionFactor, const int* positions);

// elementwise.cu
void launch_gated_act(cudaStream_t s, float* out, const float* gateUp, int rows, int inter, int act);
void launch_add(cudaStream_t s, float* a, const float* b, long n);
void launch_gather_rows(cudaStream_t s, float* out, const float* x, const int* rowIdx, int n, int dim);
/** out[r, n] += bias[n]. */
void launch_add_bias(cudaStream_t s, float* out, const float* bias, int rows, int N);
/** dst[r, :Kp] = bf16(x[r, :K]) with zero padding (the fused convert+pad in front of a cuBLAS GEMM). */
void launch_f32_to_bf16_padded(cudaStream_t s, void* dst, const float* x, int rows, int K, int Kp);

// kv_cache.cu
void launch_write_kv(cudaStream_t s, const KvView& kv, const float* qkv, int rowStride, int kOffset, int vOffset,
                     const int* slotMapping, int numTokens);
/** Copies whole blocks src[i] → dst[i] (K, V and int8 scales) for one layer. */
void launch_copy_blocks(cudaStream_t s, const KvView& kv, const int* src, const int* dst, int n);

// gemv.cu: out[rows, N] = x[rows, K] · Wᵀ (+ bias) for rows ≤ GEMV_MAX_ROWS, every storage, f32 math.
constexpr int GEMV_MAX_ROWS = 8;
void launch_gemv(cudaStream_t s, float* out, const float* x, const WeightView& w, const float* bias, int rows);

// gemm_tiled.cu: the same for any rows, a 64×64 SIMT tile kernel dequantizing in registers (f32 math).
void launch_gemm_tiled(cudaStream_t s, float* out, const float* x, const WeightView& w, const float* bias,
                       int rows);

// attention_decode.cu / attention_prefill.cu
struct AttnArgs {
  float* out;
  const float* qkv;
  int rowStride;
  KvView kv;
  int numHeads;
  int numKvHeads;
  int headDim;
  float scale;
  int window;
  float softcap;
  StepPtrs step;
};
/** Query heads handled by one decode block (GQA: all share one KV head). */
constexpr int DECODE_HEADS_PER_BLOCK = 8;
constexpr int DECODE_THREADS = 128;
/**
 * Split-K decode over `numDecode` single-token sequences (step.decodeSeqs). With splits > 1, partial
 * results go to partAcc [numDecode][numHeads][splits][headDim] and partMl [..][splits][2], and the last
 * block of each (sequence, KV head) merges them; tickets: numDecode × numKvHeads × ceil(group / 8) zeroed
 * counters (left zeroed). Shared memory: (g·hd + g·part + 4·g·hd) floats with g = min(group, 8).
 */
void launch_attention_decode(cudaStream_t s, const AttnArgs& a, int numDecode, int splits, int partition,
                             float* partAcc, float* partMl, unsigned* tickets);
/** Flash-style tiled prefill over `numTiles` (tileSeq, tileQ0) tiles of PREFILL_TILE_Q query rows. */
void launch_attention_prefill(cudaStream_t s, const AttnArgs& a, int numTiles);
/** Raise the dynamic shared memory limits of the attention kernels (called once, outside any capture). */
void attention_init(int maxSharedBytes);

// sampling.cu (one block per row)
struct SampleArgs {
  const float* logits;
  int rows;
  int vocab;
  /** Logit soft-capping applied first (0 = off). */
  float softcap;
  /** Per row: temperature, topP, minP, uniform draw u ∈ [0, 1), topK (as float bits). May be null (greedy). */
  const float* temperature;
  const float* topP;
  const float* minP;
  const float* uniform;
  const int* topK;
  int* outIds;
  /** Raw logprob of the chosen token (log-softmax of the soft-capped logits), or null. */
  float* outLogprob;
};
void launch_sample_greedy(cudaStream_t s, const SampleArgs& a);
void launch_sample(cudaStream_t s, const SampleArgs& a);

}  // namespace loom_cuda
