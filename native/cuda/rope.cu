// Rotary embedding (HF rotate-half), in place. One thread per (row, frequency i, group of 4 heads) computes
// the angle — fround(pos · invFreq[i]) as transformers does in float32 — and its cos/sin in double (as the
// reference does), loads that pair of every head of its group, then rotates and stores them (a thread per
// (row, i) looping over all heads waited on each head's load in turn: ~10 µs per launch at batch 1).
#include "device_util.cuh"
#include "kernels.h"

namespace loom_cuda {

constexpr int ROPE_HEADS = 4;

__global__ void rope_kernel(float* x, int rows, int rowStride, int offset, int numHeads, int headDim, int half,
                            const float* __restrict__ invFreq, float attentionFactor,
                            const int* __restrict__ positions) {
  const int groups = (numHeads + ROPE_HEADS - 1) / ROPE_HEADS;
  const long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (long)rows * groups * half) return;
  const int i = (int)(idx % half);
  const long rg = idx / half;
  const int r = (int)(rg / groups), h0 = (int)(rg % groups) * ROPE_HEADS;
  const float angle = __fmul_rn((float)positions[r], invFreq[i]);
  double sn, cs;
  sincos((double)angle, &sn, &cs);
  const double c = cs * (double)attentionFactor, s = sn * (double)attentionFactor;
  float* row = x + (size_t)r * rowStride + offset;
  double a[ROPE_HEADS], b[ROPE_HEADS];
#pragma unroll
  for (int k = 0; k < ROPE_HEADS; k++) {
    if (h0 + k < numHeads) {
      const float* p = row + (size_t)(h0 + k) * headDim;
      a[k] = p[i];
      b[k] = p[i + half];
    }
  }
#pragma unroll
  for (int k = 0; k < ROPE_HEADS; k++) {
    if (h0 + k < numHeads) {
      float* p = row + (size_t)(h0 + k) * headDim;
      p[i] = (float)(a[k] * c - b[k] * s);
      p[i + half] = (float)(b[k] * c + a[k] * s);
    }
  }
}

void launch_rope(cudaStream_t s, float* x, int rows, int rowStride, int offset, int numHeads, int headDim,
                 int rotaryDim, const float* invFreq, float attentionFactor, const int* positions) {
  const int half = rotaryDim / 2;
  const long n = (long)rows * ((numHeads + ROPE_HEADS - 1) / ROPE_HEADS) * half;
  if (n <= 0) return;
  LOOM_LAUNCH((unsigned)ceil_div(n, 128), 128, 0, s, rope_kernel)(x, rows, rowStride, offset, numHeads, headDim, half,
                                                          invFreq, attentionFactor, positions);
  check_launch("rope_kernel");
}

}  // namespace loom_cuda
