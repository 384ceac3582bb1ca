// AVX-512 kernels plus the AMX-BF16 GEMM (amx_gemm.inc): compiled with AVX-512 + AMX flags (binding.gyp);
// used only after dispatch.cc confirmed AMX-TILE/AMX-BF16 and the kernel granted the tile state.
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "common.h"

#define LOOM_ISA_NAME "amx"
#define LOOM_BF16_PLANE_HOOKS pack_bf16_planes
#define LOOM_AMX_HOOKS amx_panel, amx_block
#define LOOM_AMX_ATTENTION 1
// GEMV streaming as measured on Sapphire Rapids (gemv.inc; the avx512 build's defaults are Zen 4's)
#define LOOM_GEMV_STREAMS_R1 4
#define LOOM_GEMV_PF_ROWS 2
#define LOOM_GEMV_PF_LOCALITY 3
namespace loom {
namespace isa_amx {
namespace {
#include "simd_avx512.inc"
#include "amx_gemm.inc"
#include "kernels_impl.inc"
}  // namespace
}  // namespace isa_amx
const KernelTable* kernels_amx() { return &isa_amx::kTable; }
}  // namespace loom
#else
#include "common.h"
namespace loom {
const KernelTable* kernels_amx() { return nullptr; }
}  // namespace loom
#endif
