// Element-wise kernels: gated activations (SwiGLU / GeGLU-tanh), residual add, row gather, bias add, and
// the fused f32 → bf16 convert-and-pad that feeds cuBLAS.
#include "device_util.cuh"
#include "kernels.h"

namespace loom_cuda {

namespace {

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

template <int ACT>
__global__ void gated_act_kernel(float* __restrict__ out, const float* __restrict__ gu, int rows, int inter) {
  const long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (long)rows * inter) return;
  const long r = idx / inter, i = idx % inter;
  const float g = gu[r * 2 * inter + i], u = gu[r * 2 * inter + inter + i];
  out[idx] = (ACT == ACT_SILU ? silu(g) : gelu_tanh(g)) * u;
}

__global__ void add_kernel(float* __restrict__ a, const float* __restrict__ b, long n) {
  const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) a[i] += b[i];
}

__global__ void gather_rows_kernel(float* __restrict__ out, const float* __restrict__ x,
                                   const int* __restrict__ rowIdx, int dim) {
  const int i = blockIdx.x;
  const float* src = x + (size_t)rowIdx[i] * dim;
  float* dst = out + (size_t)i * dim;
  for (int k = threadIdx.x; k < dim; k += blockDim.x) dst[k] = src[k];
}

__global__ void add_bias_kernel(float* __restrict__ out, const float* __restrict__ bias, int rows, int N) {
  const long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx < (long)rows * N) out[idx] += bias[idx % N];
}

/** Two columns per thread; Kp is a multiple of 32. */
__global__ void f32_to_bf16_padded_kernel(__nv_bfloat162* __restrict__ dst, const float* __restrict__ x, int rows,
                                          int K, int Kp) {
  const long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
  const int half = Kp / 2;
  if (idx >= (long)rows * half) return;
  const long r = idx / half;
  const int k = (int)(idx % half) * 2;
  const float* row = x + r * K;
  const float a = k < K ? row[k] : 0.0f;
  const float b = k + 1 < K ? row[k + 1] : 0.0f;
  dst[idx] = __floats2bfloat162_rn(a, b);
}

}  // namespace

void launch_gated_act(cudaStream_t s, float* out, const float* gateUp, int rows, int inter, int act) {
  const long n = (long)rows * inter;
  if (n <= 0) return;
  const unsigned blocks = (unsigned)ceil_div(n, 256);
  if (act == ACT_SILU) {
    LOOM_LAUNCH(blocks, 256, 0, s, gated_act_kernel<ACT_SILU>)(out, gateUp, rows, inter);
  } else {
    LOOM_LAUNCH(blocks, 256, 0, s, gated_act_kernel<ACT_GELU_TANH>)(out, gateUp, rows, inter);
  }
  check_launch("gated_act_kernel");
}

void launch_add(cudaStream_t s, float* a, const float* b, long n) {
  if (n <= 0) return;
  LOOM_LAUNCH((unsigned)ceil_div(n, 256), 256, 0, s, add_kernel)(a, b, n);
  check_launch("add_kernel");
}

void launch_gather_rows(cudaStream_t s, float* out, const float* x, const int* rowIdx, int n, int dim) {
  if (n <= 0) return;
  LOOM_LAUNCH(n, dim >= 256 ? 256 : 64, 0, s, gather_rows_kernel)(out, x, rowIdx, dim);
  check_launch("gather_rows_kernel");
}

void launch_add_bias(cudaStream_t s, float* out, const float* bias, int rows, int N) {
  const long n = (long)rows * N;
  if (n <= 0) return;
  LOOM_LAUNCH((unsigned)ceil_div(n, 256), 256, 0, s, add_bias_kernel)(out, bias, rows, N);
  check_launch("add_bias_kernel");
}

void launch_f32_to_bf16_padded(cudaStream_t s, void* dst, const float* x, int rows, int K, int Kp) {
  const long n = (long)rows * (Kp / 2);
  if (n <= 0) return;
  LOOM_LAUNCH((unsigned)ceil_div(n, 256), 256, 0, s, f32_to_bf16_padded_kernel)((__nv_bfloat162*)dst, x, rows, K, Kp);
  check_launch("f32_to_bf16_padded_kernel");
}

}  // namespace loom_cuda
