// Device-side helpers shared by the kernels: warp/block reductions, 16-bit float decoding, and the
// weight "unit" loaders the GEMV and tiled GEMM kernels use to dequantize in registers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common.h"

// Kernel launches and dynamic shared memory go through macros so that native/cuda/emu can run the same
// kernel source on the CPU (scripts/build-cuda.mjs --emulate) for tests on machines without a GPU.
#ifndef LOOM_CUDA_EMULATION
#define LOOM_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define LOOM_DYNAMIC_SMEM(T, name) extern __shared__ T name[]
#endif

namespace loom_cuda {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/**
 * Sum over the block (blockDim.x a multiple of 32, ≤ 1024); every thread gets the result. `red` is
 * shared scratch of ≥ 32 floats; the call begins and ends with a barrier, so it may be reused.
 */
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = lane < nw ? red[lane] : 0.0f;
  return warp_sum(t);
}

__device__ __forceinline__ float block_max(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = lane < nw ? red[lane] : -INFINITY;
  return warp_max(t);
}

__device__ __forceinline__ float bf16_bits_to_f32(unsigned int bits16) { return __uint_as_float(bits16 << 16); }
__device__ __forceinline__ float f16_bits_to_f32(unsigned int bits16) {
  return __half2float(__ushort_as_half((unsigned short)bits16));
}

/** fround(q · d): a single rounding, never fused with a following add. */
__device__ __forceinline__ float deq8(int q, float d) { return __fmul_rn((float)q, d); }
/** fround(fround(q · d) + m). */
__device__ __forceinline__ float deq4(int q, float d, float m) { return __fadd_rn(__fmul_rn((float)q, d), m); }

/**
 * Weight units: 8 weights of row n, in two runs of 4 consecutive columns starting at k0(u) and k1(u).
 * Units per row: Kp / 8. For f32/f16/bf16/int8 the runs are adjacent (k1 = k0 + 4); for int4 a unit is 4
 * bytes of a 32-group, whose low nibbles are columns c*4..c*4+3 and high nibbles 16+c*4..16+c*4+3.
 * Every load is aligned (rows are padded to multiples of 32 columns).
 */
template <int FMT>
struct Unit;

template <>
struct Unit<ST_F32> {
  static __device__ __forceinline__ int k0(int u) { return u * 8; }
  static __device__ __forceinline__ int k1(int u) { return u * 8 + 4; }
  static __device__ __forceinline__ void load(const WeightView& w, int n, int u, float v[8]) {
    const float4* p = reinterpret_cast<const float4*>((const float*)w.data + (size_t)n * w.Kp + u * 8);
    float4 a = __ldg(p), b = __ldg(p + 1);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  }
};

template <>
struct Unit<ST_BF16> {
  static __device__ __forceinline__ int k0(int u) { return u * 8; }
  static __device__ __forceinline__ int k1(int u) { return u * 8 + 4; }
  static __device__ __forceinline__ void load(const WeightView& w, int n, int u, float v[8]) {
    uint4 r = __ldg(reinterpret_cast<const uint4*>((const unsigned short*)w.data + (size_t)n * w.Kp + u * 8));
    const unsigned int x[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      v[2 * i] = __uint_as_float(x[i] << 16);
      v[2 * i + 1] = __uint_as_float(x[i] & 0xffff0000u);
    }
  }
};

template <>
struct Unit<ST_F16> {
  static __device__ __forceinline__ int k0(int u) { return u * 8; }
  static __device__ __forceinline__ int k1(int u) { return u * 8 + 4; }
  static __device__ __forceinline__ void load(const WeightView& w, int n, int u, float v[8]) {
    uint4 r = __ldg(reinterpret_cast<const uint4*>((const unsigned short*)w.data + (size_t)n * w.Kp + u * 8));
    const unsigned int x[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      v[2 * i] = f16_bits_to_f32(x[i] & 0xffffu);
      v[2 * i + 1] = f16_bits_to_f32(x[i] >> 16);
    }
  }
};

template <>
struct Unit<ST_INT8> {
  static __device__ __forceinline__ int k0(int u) { return u * 8; }
  static __device__ __forceinline__ int k1(int u) { return u * 8 + 4; }
  static __device__ __forceinline__ void load(const WeightView& w, int n, int u, float v[8]) {
    uint2 r = __ldg(reinterpret_cast<const uint2*>((const signed char*)w.data + (size_t)n * w.Kp + u * 8));
    const int G = w.Kp / QGROUP;
    const float d = __ldg(w.scales + (size_t)n * G + (u >> 2));
#pragma unroll
    for (int i = 0; i < 4; i++) {
      v[i] = deq8((signed char)((r.x >> (8 * i)) & 0xff), d);
      v[4 + i] = deq8((signed char)((r.y >> (8 * i)) & 0xff), d);
    }
  }
};

template <>
struct Unit<ST_INT4> {
  static __device__ __forceinline__ int k0(int u) { return (u >> 2) * 32 + (u & 3) * 4; }
  static __device__ __forceinline__ int k1(int u) { return (u >> 2) * 32 + 16 + (u & 3) * 4; }
  static __device__ __forceinline__ void load(const WeightView& w, int n, int u, float v[8]) {
    const int G = w.Kp / QGROUP;
    const int g = u >> 2, c = u & 3;
    unsigned int r = __ldg(reinterpret_cast<const unsigned int*>((const unsigned char*)w.data +
                                                                 (size_t)n * (w.Kp / 2) + g * 16 + c * 4));
    const float2 dm = __ldg(reinterpret_cast<const float2*>(w.scales) + (size_t)n * G + g);
#pragma unroll
    for (int i = 0; i < 4; i++) {
      unsigned int b = (r >> (8 * i)) & 0xff;
      v[i] = deq4((int)(b & 15), dm.x, dm.y);
      v[4 + i] = deq4((int)(b >> 4), dm.x, dm.y);
    }
  }
};

/** One dequantized element W[n][k] (k < Kp), bit-exact with quant.ts (embedding rows). */
__device__ __forceinline__ float weight_at(const WeightView& w, int n, int k) {
  const size_t row = (size_t)n * w.Kp;
  const int G = w.Kp / QGROUP;
  switch (w.storage) {
    case ST_F32: return ((const float*)w.data)[row + k];
    case ST_BF16: return bf16_bits_to_f32(((const unsigned short*)w.data)[row + k]);
    case ST_F16: return f16_bits_to_f32(((const unsigned short*)w.data)[row + k]);
    case ST_INT8: return deq8(((const signed char*)w.data)[row + k], w.scales[(size_t)n * G + k / QGROUP]);
    default: {
      const int g = k / QGROUP, j = k % QGROUP;
      unsigned int b = ((const unsigned char*)w.data)[(size_t)n * (w.Kp / 2) + g * 16 + (j & 15)];
      int q = j < 16 ? (int)(b & 15) : (int)(b >> 4);
      return deq4(q, w.scales[2 * ((size_t)n * G + g)], w.scales[2 * ((size_t)n * G + g) + 1]);
    }
  }
}

/** KV element loaders: value i of the vector of `headDim` at element offset `off` (slot*kvHeads+head)*hd. */
template <int KVT>
struct KvLoad;

template <>
struct KvLoad<KV_F32> {
  static __device__ __forceinline__ float at(const void* p, const float*, size_t off, size_t, int i) {
    return ((const float*)p)[off + i];
  }
};
template <>
struct KvLoad<KV_BF16> {
  static __device__ __forceinline__ float at(const void* p, const float*, size_t off, size_t, int i) {
    return bf16_bits_to_f32(((const unsigned short*)p)[off + i]);
  }
};
template <>
struct KvLoad<KV_F16> {
  static __device__ __forceinline__ float at(const void* p, const float*, size_t off, size_t, int i) {
    return f16_bits_to_f32(((const unsigned short*)p)[off + i]);
  }
};
template <>
struct KvLoad<KV_INT8> {
  /** `vec` = index of the (slot, head) vector, whose scale multiplies every element (fround(q·d)). */
  static __device__ __forceinline__ float at(const void* p, const float* scale, size_t off, size_t vec, int i) {
    return deq8(((const signed char*)p)[off + i], scale[vec]);
  }
};

/**
 * Eight consecutive KV elements d..d+7 of the vector at `off` into out[]: one 16-byte load for bf16/f16, two
 * for f32, one 8-byte load for int8. Needs off and d multiples of 8 (headDim % 8 == 0) for alignment.
 */
template <int KVT>
__device__ __forceinline__ void kv_load8(const void* p, const float* scale, size_t off, size_t vec, int d,
                                         float out[8]) {
  if (KVT == KV_F32) {
    const float4* q = reinterpret_cast<const float4*>((const float*)p + off + d);
    const float4 a = q[0], b = q[1];
    out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
    out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
  } else if (KVT == KV_INT8) {
    const uint2 u = *reinterpret_cast<const uint2*>((const signed char*)p + off + d);
    const float sc = scale[vec];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      out[i] = deq8((signed char)((u.x >> (8 * i)) & 0xffu), sc);
      out[4 + i] = deq8((signed char)((u.y >> (8 * i)) & 0xffu), sc);
    }
  } else {
    const uint4 u = *reinterpret_cast<const uint4*>((const unsigned short*)p + off + d);
    const unsigned int w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      out[2 * i] = KVT == KV_BF16 ? bf16_bits_to_f32(w[i] & 0xffffu) : f16_bits_to_f32(w[i] & 0xffffu);
      out[2 * i + 1] = KVT == KV_BF16 ? bf16_bits_to_f32(w[i] >> 16) : f16_bits_to_f32(w[i] >> 16);
    }
  }
}

}  // namespace loom_cuda
