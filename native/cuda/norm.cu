// RMSNorm kernels: plain, fused residual-add + norm (one pass per row over global memory for the add,
// one for the scale), and the per-head q/k norm of Qwen3/Gemma 3. One block (or warp) per vector; sums of
// squares in f32 through a tree reduction.
#include "device_util.cuh"
#include "kernels.h"

namespace loom_cuda {

namespace {

constexpr int NORM_THREADS = 256;

__device__ __forceinline__ float norm_scale(const float* w, int i, bool plusOne) {
  return plusOne ? 1.0f + w[i] : w[i];
}

/** out may alias x: each element is read and written by the same thread, after the reduction. */
__global__ void rms_norm_kernel(float* out, const float* x, const float* __restrict__ w, int dim, float eps,
                                bool plusOne) {
  __shared__ float red[32];
  const size_t base = (size_t)blockIdx.x * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = x[base + i];
    ss += v * v;
  }
  ss = block_sum(ss, red);
  const float inv = 1.0f / sqrtf(ss / (float)dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) out[base + i] = x[base + i] * inv * norm_scale(w, i, plusOne);
}

__global__ void add_rms_norm_kernel(float* out, float* residual, const float* x, const float* __restrict__ w,
                                    int dim, float eps, bool plusOne) {
  __shared__ float red[32];
  const size_t base = (size_t)blockIdx.x * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = residual[base + i] + x[base + i];
    residual[base + i] = v;
    ss += v * v;
  }
  ss = block_sum(ss, red);
  const float inv = 1.0f / sqrtf(ss / (float)dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    out[base + i] = residual[base + i] * inv * norm_scale(w, i, plusOne);
  }
}

/**
 * The same two norms (ADD: the fused residual add) with each thread's V elements held in registers
 * (dim ≤ V·blockDim): every load of a row is issued before any store and the second pass reads no memory
 * but w (the loops above wait on each element in turn, since out/residual may alias x: ~8 µs per launch at
 * one row of 2048).
 */
template <int V, bool ADD>
__global__ void __launch_bounds__(1024)
    rms_norm_reg_kernel(float* out, float* residual, const float* x, const float* __restrict__ w, int dim,
                        float eps, bool plusOne) {
  __shared__ float red[32];
  const size_t base = (size_t)blockIdx.x * dim;
  float v[V];
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < V; k++) {
    const int i = threadIdx.x + k * blockDim.x;
    v[k] = i >= dim ? 0.0f : ADD ? residual[base + i] + x[base + i] : x[base + i];
    ss += v[k] * v[k];
  }
  if (ADD) {
#pragma unroll
    for (int k = 0; k < V; k++) {
      const int i = threadIdx.x + k * blockDim.x;
      if (i < dim) residual[base + i] = v[k];
    }
  }
  ss = block_sum(ss, red);
  const float inv = 1.0f / sqrtf(ss / (float)dim + eps);
#pragma unroll
  for (int k = 0; k < V; k++) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < dim) out[base + i] = v[k] * inv * norm_scale(w, i, plusOne);
  }
}

/**
 * The register kernel for dims ≤ 8192 (1, 2, 4 or 8 elements per thread, whole warps); false when dim is
 * larger (the caller launches the looping kernel).
 */
template <bool ADD>
bool launch_norm_reg(cudaStream_t s, float* out, float* residual, const float* x, const float* w, int rows, int dim,
                     float eps, bool plusOne) {
  int v = 1;
  while (v <= 8 && dim > v * 1024) v *= 2;
  const unsigned t = (unsigned)ceil_div(ceil_div(dim, v), 32) * 32;
  switch (v) {
    case 1: LOOM_LAUNCH(rows, t, 0, s, rms_norm_reg_kernel<1, ADD>)(out, residual, x, w, dim, eps, plusOne); break;
    case 2: LOOM_LAUNCH(rows, t, 0, s, rms_norm_reg_kernel<2, ADD>)(out, residual, x, w, dim, eps, plusOne); break;
    case 4: LOOM_LAUNCH(rows, t, 0, s, rms_norm_reg_kernel<4, ADD>)(out, residual, x, w, dim, eps, plusOne); break;
    case 8: LOOM_LAUNCH(rows, t, 0, s, rms_norm_reg_kernel<8, ADD>)(out, residual, x, w, dim, eps, plusOne); break;
    default: return false;
  }
  return true;
}

/** One warp per (row, head). */
__global__ void head_norm_kernel(float* x, int rows, int rowStride, int offset, int numHeads, int headDim,
                                 const float* __restrict__ w, float eps, bool plusOne) {
  const int vec = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (vec >= rows * numHeads) return;
  const int r = vec / numHeads, h = vec % numHeads;
  float* p = x + (size_t)r * rowStride + offset + (size_t)h * headDim;
  float ss = 0.0f;
  for (int i = lane; i < headDim; i += 32) ss += p[i] * p[i];
  ss = warp_sum(ss);
  const float inv = 1.0f / sqrtf(ss / (float)headDim + eps);
  for (int i = lane; i < headDim; i += 32) p[i] = p[i] * inv * norm_scale(w, i, plusOne);
}

}  // namespace

void launch_rms_norm(cudaStream_t s, float* out, const float* x, const float* w, int rows, int dim, float eps,
                     bool plusOne) {
  if (rows <= 0) return;
  if (!launch_norm_reg<false>(s, out, nullptr, x, w, rows, dim, eps, plusOne)) {
    LOOM_LAUNCH(rows, NORM_THREADS, 0, s, rms_norm_kernel)(out, x, w, dim, eps, plusOne);
  }
  check_launch("rms_norm_kernel");
}

void launch_add_rms_norm(cudaStream_t s, float* out, float* residual, const float* x, const float* w, int rows,
                         int dim, float eps, bool plusOne) {
  if (rows <= 0) return;
  if (!launch_norm_reg<true>(s, out, residual, x, w, rows, dim, eps, plusOne)) {
    LOOM_LAUNCH(rows, NORM_THREADS, 0, s, add_rms_norm_kernel)(out, residual, x, w, dim, eps, plusOne);
  }
  check_launch("add_rms_norm_kernel");
}

void launch_head_norm(cudaStream_t s, float* x, int rows, int rowStride, int offset, int numHeads, int headDim,
                      const float* w, float eps, bool plusOne) {
  const long vecs = (long)rows * numHeads;
  if (vecs <= 0) return;
  const int warps = 8;
  LOOM_LAUNCH((unsigned)ceil_div(vecs, warps), warps * 32, 0, s, head_norm_kernel)(x, rows, rowStride, offset, numHeads,
                                                                          headDim, w, eps, plusOne);
  check_launch("head_norm_kernel");
}

}  // namespace loom_cuda
