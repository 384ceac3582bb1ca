// GEMV for decode-sized batches (rows ≤ 8): out[rows, N] = x[rows, K] · Wᵀ (+ bias), any storage.
//
// One warp per output column n streams row n of W exactly once — lanes take consecutive 8-weight units, so
// a warp reads a contiguous 256-weight stretch per iteration (16-byte loads for bf16/f16) — dequantizes in
// registers and applies it to every activation row. At one row, long weight rows (K ≥ 4096) are shared by
// 2 or 4 warps of the block, each taking every 2nd/4th stretch. Arithmetic is f32 (activations are never rounded), so
// the result equals the reference up to summation order. Memory-bound: the weight read is the cost.
//
//   lane:        0        1        2             31   0 (next iteration)
//   units:    [u0 8 w][u1 8 w][u2 8 w]  ...  [u31 8 w][u32 ...]        one row of W, Kp/8 units
#include "device_util.cuh"
#include "kernels.h"

namespace loom_cuda {

namespace {

constexpr int GEMV_WARPS = 4;

template <bool VEC>
__device__ __forceinline__ void load_run(const float* xr, int k, int K, float v[4]) {
  if (VEC) {
    if (k < K) {
      float4 t = __ldg(reinterpret_cast<const float4*>(xr + k));
      v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
    } else {
      v[0] = v[1] = v[2] = v[3] = 0.0f;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; i++) v[i] = k + i < K ? __ldg(xr + k + i) : 0.0f;
  }
}

/**
 * VEC: K % 4 == 0, so every 4-run is entirely inside or outside the row and float4 loads are aligned.
 * KS: warps per weight row. With KS > 1 the block's warps split each row's units between them (a long row,
 * K = 8192, read by one warp is 32 loads in a chain of round trips) and add their sums in shared memory.
 */
template <int FMT, int R, bool VEC, int KS>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    gemv_kernel(float* __restrict__ out, const float* __restrict__ x, WeightView w, const float* __restrict__ bias,
                int rows) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int n = blockIdx.x * (GEMV_WARPS / KS) + warp / KS;
  if (KS == 1 && n >= w.N) return;
  const bool active = n < w.N;  // KS > 1: every warp reaches the barrier below
  const int K = w.K;
  const int units = active ? w.Kp / 8 : 0;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; r++) acc[r] = 0.0f;
  // one or two rows: 8 weight loads in flight per lane (short rows of K = 2048 are then one round trip)
#pragma unroll(R <= 2 ? 8 : 4)
  for (int u = lane + 32 * (warp % KS); u < units; u += 32 * KS) {
    float wv[8];
    Unit<FMT>::load(w, n, u, wv);
    const int ka = Unit<FMT>::k0(u), kb = Unit<FMT>::k1(u);
#pragma unroll
    for (int r = 0; r < R; r++) {
      if (r < rows) {
        const float* xr = x + (size_t)r * K;
        float xa[4], xb[4];
        load_run<VEC>(xr, ka, K, xa);
        load_run<VEC>(xr, kb, K, xb);
        float s = acc[r];
#pragma unroll
        for (int i = 0; i < 4; i++) s += wv[i] * xa[i];
#pragma unroll
        for (int i = 0; i < 4; i++) s += wv[4 + i] * xb[i];
        acc[r] = s;
      }
    }
  }
  const float b = bias && active ? bias[n] : 0.0f;
  if (KS == 1) {
#pragma unroll
    for (int r = 0; r < R; r++) {
      const float v = warp_sum(acc[r]);
      if (lane == 0 && r < rows) out[(size_t)r * w.N + n] = v + b;
    }
    return;
  }
  __shared__ float part[GEMV_WARPS][R];
#pragma unroll
  for (int r = 0; r < R; r++) {
    const float v = warp_sum(acc[r]);
    if (lane == 0) part[warp][r] = v;
  }
  __syncthreads();
  if (lane == 0 && warp % KS == 0 && active) {
#pragma unroll
    for (int r = 0; r < R; r++) {
      if (r < rows) {
        float v = 0.0f;
#pragma unroll
        for (int k = 0; k < KS; k++) v += part[warp + k][r];
        out[(size_t)r * w.N + n] = v + b;
      }
    }
  }
}

template <int FMT, int R, int KS>
void launch_ks(cudaStream_t s, float* out, const float* x, const WeightView& w, const float* bias, int rows) {
  const unsigned blocks = (unsigned)ceil_div(w.N, GEMV_WARPS / KS);
  if (w.K % 4 == 0) {
    LOOM_LAUNCH(blocks, GEMV_WARPS * 32, 0, s, gemv_kernel<FMT, R, true, KS>)(out, x, w, bias, rows);
  } else {
    LOOM_LAUNCH(blocks, GEMV_WARPS * 32, 0, s, gemv_kernel<FMT, R, false, KS>)(out, x, w, bias, rows);
  }
}

/** One row: rows of ≥ 4096 weights are split between 2 warps, of ≥ 8192 between 4. */
template <int FMT, int R>
void launch_r(cudaStream_t s, float* out, const float* x, const WeightView& w, const float* bias, int rows) {
  if constexpr (R == 1) {
    const int units = w.Kp / 8;
    if (units >= 1024) return launch_ks<FMT, 1, 4>(s, out, x, w, bias, rows);
    if (units >= 512) return launch_ks<FMT, 1, 2>(s, out, x, w, bias, rows);
  }
  launch_ks<FMT, R, 1>(s, out, x, w, bias, rows);
}

template <int FMT>
void launch_fmt(cudaStream_t s, float* out, const float* x, const WeightView& w, const float* bias, int rows) {
  if (rows <= 1) launch_r<FMT, 1>(s, out, x, w, bias, rows);
  else if (rows <= 2) launch_r<FMT, 2>(s, out, x, w, bias, rows);
  else if (rows <= 4) launch_r<FMT, 4>(s, out, x, w, bias, rows);
  else launch_r<FMT, 8>(s, out, x, w, bias, rows);
}

}  // namespace

void launch_gemv(cudaStream_t s, float* out, const float* x, const WeightView& w, const float* bias, int rows) {
  if (rows <= 0 || w.N <= 0) return;
  if (rows > GEMV_MAX_ROWS) throw CudaError("launch_gemv: more than 8 rows");
  switch (w.storage) {
    case ST_F32: launch_fmt<ST_F32>(s, out, x, w, bias, rows); break;
    case ST_F16: launch_fmt<ST_F16>(s, out, x, w, bias, rows); break;
    case ST_BF16: launch_fmt<ST_BF16>(s, out, x, w, bias, rows); break;
    case ST_INT8: launch_fmt<ST_INT8>(s, out, x, w, bias, rows); break;
    default: launch_fmt<ST_INT4>(s, out, x, w, bias, rows);
  }
  check_launch("gemv_kernel");
}

}  // namespace loom_cuda
