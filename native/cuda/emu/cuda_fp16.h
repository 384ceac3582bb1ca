// CPU emulation of the f16 types and conversions the kernels use (see cuda_runtime.h).
#pragma once
#include <cstdint>

namespace loom_cuda {
float f16_to_f32_host(uint16_t h);
uint16_t f32_to_f16_host(float x);
}  // namespace loom_cuda

struct __half {
  uint16_t bits;
};
inline __half __ushort_as_half(unsigned short b) { return __half{b}; }
inline float __half2float(__half h) { return loom_cuda::f16_to_f32_host(h.bits); }
inline __half __float2half_rn(float f) { return __half{loom_cuda::f32_to_f16_host(f)}; }
