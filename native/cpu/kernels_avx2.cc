// avx2 kernels: this file alone is compiled with the avx2 flags (see binding.gyp); it is only
// called after __builtin_cpu_supports confirmed the CPU has them (dispatch.cc).
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>

#include "common.h"

#define LOOM_ISA_NAME "avx2"
namespace loom {
namespace isa_avx2 {
namespace {
#include "simd_avx2.inc"
#include "kernels_impl.inc"
}  // namespace
}  // namespace isa_avx2
const KernelTable* kernels_avx2() { return &isa_avx2::kTable; }
}  // namespace loom
#else
#include "common.h"
namespace loom {
const KernelTable* kernels_avx2() { return nullptr; }
}  // namespace loom
#endif
