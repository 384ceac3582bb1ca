// Portable kernels (no SIMD flags; the compiler may still use the baseline SSE2/NEON).
#include <math.h>

#include "common.h"

#define LOOM_ISA_NAME "scalar"
namespace loom {
namespace isa_scalar {
namespace {
#include "simd_scalar.inc"
#include "kernels_impl.inc"
}  // namespace
}  // namespace isa_scalar
const KernelTable* kernels_scalar() { return &isa_scalar::kTable; }
}  // namespace loom
