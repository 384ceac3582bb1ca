// avx512 kernels: this file alone is compiled with the avx512 flags (see binding.gyp); it is only
// called after __builtin_cpu_supports confirmed the CPU has them (dispatch.cc).
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>

#include "common.h"

#define LOOM_ISA_NAME "avx512"
#define LOOM_QUANT_PANELS 1  // int8/int4 panels for AVX512-VNNI CPUs (quant_panels.inc); the AMX build has its own GEMM
#define LOOM_BF16_DOT 1      // the bf16 GEMM for AVX512-BF16 CPUs (bf16_dot.inc); the AMX build has its own
#define LOOM_GEMV_PF_ROWS 0  // row-major GEMV streams without software prefetch, as measured on Zen 4 (gemv.inc)
namespace loom {
namespace isa_avx512 {
namespace {
#include "simd_avx512.inc"
#include "kernels_impl.inc"
}  // namespace
}  // namespace isa_avx512
const KernelTable* kernels_avx512() { return &isa_avx512::kTable; }
}  // namespace loom
#else
#include "common.h"
namespace loom {
const KernelTable* kernels_avx512() { return nullptr; }
}  // namespace loom
#endif
