// Runtime ISA selection: the best kernel table this CPU supports, or the one LOOM_CPU_ISA / the `isa`
// option asks for (a lower one, to test every path on one machine).
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "context.h"

namespace loom {

#if defined(__x86_64__)
namespace {
bool has_f16c() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  return (c & bit_F16C) != 0;
}
}  // namespace
bool cpu_supports_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
}
bool cpu_supports_avx512() {
  __builtin_cpu_init();
  return cpu_supports_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
bool cpu_supports_avx512_vnni() {
  static const bool ok = cpu_supports_avx512() && __builtin_cpu_supports("avx512vnni");
  return ok;
}
bool cpu_supports_avx512_bf16() {
  static const bool ok = cpu_supports_avx512() && __builtin_cpu_supports("avx512bf16");
  return ok;
}
bool cpu_supports_amx() {
  static const bool ok = [] {
    // the AMX kernels also use AVX512-BF16 (vcvtne2ps2bf16: int8/int4 → bf16 panels), on every AMX CPU
    if (!cpu_supports_avx512() || !__builtin_cpu_supports("avx512bf16")) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = d & (1u << 24), bf16 = d & (1u << 22);
    if (!tile || !bf16) return false;
#ifdef __linux__
    // Linux hands out the AMX tile state only on request (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
    return false;
#endif
  }();
  return ok;
}
#else
bool cpu_supports_avx2() { return false; }
bool cpu_supports_avx512() { return false; }
bool cpu_supports_avx512_vnni() { return false; }
bool cpu_supports_avx512_bf16() { return false; }
bool cpu_supports_amx() { return false; }
#endif

const KernelTable* select_kernels(const std::string& want, std::string* err) {
  const bool a512 = cpu_supports_avx512() && kernels_avx512();
  const bool a2 = cpu_supports_avx2() && kernels_avx2();
  if (want.empty() || want == "auto") {
    if (a512 && kernels_amx() && cpu_supports_amx()) return kernels_amx();
    return a512 ? kernels_avx512() : a2 ? kernels_avx2() : kernels_scalar();
  }
  if (want == "scalar") return kernels_scalar();
  if (want == "avx2") {
    if (a2) return kernels_avx2();
    *err = "this CPU (or build) lacks AVX2+FMA+F16C";
    return nullptr;
  }
  if (want == "avx512") {
    if (a512) return kernels_avx512();
    *err = "this CPU (or build) lacks AVX-512 F/BW/VL/DQ";
    return nullptr;
  }
  if (want == "amx") {
    if (a512 && kernels_amx() && cpu_supports_amx()) return kernels_amx();
    *err = "this CPU, OS (tile state permission) or build lacks AMX-TILE/AMX-BF16 (or AVX512-BF16)";
    return nullptr;
  }
  *err = "unknown ISA \"" + want + "\" (expected scalar, avx2, avx512 or amx)";
  return nullptr;
}

}  // namespace loom
