// Rotary embedding (HF rotate-half), in place. One thread per (row, frequency i) computes the angle once —
// fround(pos · invFreq[i]) as transformers does in float32 — and its cos/sin in double (as the reference
// does), then rotates that pair in every head.
#include "device_util.cuh"
#include "kernels.h"

namespace loom_cuda {

__global__ void rope_kernel(float* x, int rows, int rowStride, int offset, int numHeads, int headDim, int half,
                            const float* __restrict__ invFreq, float attentionFactor,
                            const int* __restrict__ positions) {
  const long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (long)rows * half) return;
  const int r = (int)(idx / half), i = (int)(idx % half);
  const float angle = __fmul_rn((float)positions[r], invFreq[i]);
  double sn, cs;
  sincos((double)angle, &sn, &cs);
  const double c = cs * (double)attentionFactor, s = sn * (double)attentionFactor;
  float* row = x + (size_t)r * rowStride + offset;
  for (int h = 0; h < numHeads; h++) {
    float* p = row + (size_t)h * headDim;
    const double a = p[i], b = p[i + half];
    p[i] = (float)(a * c - b * s);
    p[i + half] = (float)(b * c + a * s);
  }
}

void launch_rope(cudaStream_t s, float* x, int rows, int rowStride, int offset, int numHeads, int headDim,
                 int rotaryDim, const float* invFreq, float attentionFactor, const int* positions) {
  const int half = rotaryDim / 2;
  const long n = (long)rows * half;
  if (n <= 0) return;
  LOOM_LAUNCH((unsigned)ceil_div(n, 128), 128, 0, s, rope_kernel)(x, rows, rowStride, offset, numHeads, headDim, half,
                                                          invFreq, attentionFactor, positions);
  check_launch("rope_kernel");
}

}  // namespace loom_cuda
