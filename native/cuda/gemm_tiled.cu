// Tiled SIMT GEMM for batches of any size and every storage: out[M, N] = x[M, K] · Wᵀ (+ bias), f32 math.
// Serves int8/int4 (weight-only quantization; dequantized in registers while the tile is staged), f32 and
// f16 weights, and bf16 when cuBLAS is unavailable or turned off. Not tensor cores: a 64×64 output tile per
// 256-thread block, 4×4 outputs per thread, K in steps of 32 — one quantization group per step.
//
//   Xs[k][m] (64 rows of x, transposed)      Ws[k][n] (64 rows of W, dequantized, transposed)
//   thread (ty, tx) accumulates out[m0 + 4ty .. +4][n0 + 4tx .. +4]
#include "device_util.cuh"
#include "kernels.h"

namespace loom_cuda {

namespace {

constexpr int BM = 64, BN = 64, BK = 32;

template <int FMT>
__global__ void __launch_bounds__(256)
    gemm_tiled_kernel(float* __restrict__ out, const float* __restrict__ x, WeightView w,
                      const float* __restrict__ bias, int M) {
  __shared__ __align__(16) float Xs[BK][BM + 4];
  __shared__ __align__(16) float Ws[BK][BN + 4];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int K = w.K, N = w.N;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

  const int lr = tid >> 2;  // tile row this thread stages (x row m0+lr, W row n0+lr)
  const int lc = tid & 3;   // which quarter of the 32 columns
  for (int kt = 0; kt < w.Kp; kt += BK) {
    {
      const int m = m0 + lr;
      const int kk = lc * 8;
      const float* xr = x + (size_t)m * K;
#pragma unroll
      for (int i = 0; i < 8; i++) {
        const int k = kt + kk + i;
        Xs[kk + i][lr] = (m < M && k < K) ? __ldg(xr + k) : 0.0f;
      }
    }
    {
      const int n = n0 + lr;
      const int u = kt / 8 + lc;
      float v[8];
      if (n < N) {
        Unit<FMT>::load(w, n, u, v);
      } else {
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = 0.0f;
      }
      const int ka = Unit<FMT>::k0(u) - kt, kb = Unit<FMT>::k1(u) - kt;
#pragma unroll
      for (int i = 0; i < 4; i++) {
        Ws[ka + i][lr] = v[i];
        Ws[kb + i][lr] = v[4 + i];
      }
    }
    __syncthreads();
#pragma unroll 8
    for (int k = 0; k < BK; k++) {
      const float4 a = *reinterpret_cast<const float4*>(&Xs[k][ty * 4]);
      const float4 b = *reinterpret_cast<const float4*>(&Ws[k][tx * 4]);
      const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int m = m0 + ty * 4 + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int n = n0 + tx * 4 + j;
      if (n < N) out[(size_t)m * N + n] = acc[i][j] + (bias ? bias[n] : 0.0f);
    }
  }
}

}  // namespace

void launch_gemm_tiled(cudaStream_t s, float* out, const float* x, const WeightView& w, const float* bias,
                       int rows) {
  if (rows <= 0 || w.N <= 0) return;
  const dim3 grid((unsigned)ceil_div(w.N, BN), (unsigned)ceil_div(rows, BM));
  switch (w.storage) {
    case ST_F32: LOOM_LAUNCH(grid, 256, 0, s, gemm_tiled_kernel<ST_F32>)(out, x, w, bias, rows); break;
    case ST_F16: LOOM_LAUNCH(grid, 256, 0, s, gemm_tiled_kernel<ST_F16>)(out, x, w, bias, rows); break;
    case ST_BF16: LOOM_LAUNCH(grid, 256, 0, s, gemm_tiled_kernel<ST_BF16>)(out, x, w, bias, rows); break;
    case ST_INT8: LOOM_LAUNCH(grid, 256, 0, s, gemm_tiled_kernel<ST_INT8>)(out, x, w, bias, rows); break;
    default: LOOM_LAUNCH(grid, 256, 0, s, gemm_tiled_kernel<ST_INT4>)(out, x, w, bias, rows);
  }
  check_launch("gemm_tiled_kernel");
}

}  // namespace loom_cuda
