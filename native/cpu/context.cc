#include "context.h"

#include <cstring>
#include <new>
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace loom {

void* aligned_zalloc(size_t bytes) {
  size_t n = (bytes + 63) / 64 * 64;
  if (n == 0) n = 64;
  void* p = nullptr;
#ifdef __linux__
  // Weights and KV pools are streamed from DRAM every step: on 2 MB pages (transparent huge pages, which
  // most distributions leave on "madvise") a stream walks 512× fewer page-table entries.
  constexpr size_t kHuge = size_t(2) << 20;
  if (n >= 2 * kHuge) {
    if (posix_memalign(&p, kHuge, n) != 0) return nullptr;
    madvise(p, n / kHuge * kHuge, MADV_HUGEPAGE);
    std::memset(p, 0, n);
    return p;
  }
#endif
  if (posix_memalign(&p, 64, n) != 0) return nullptr;
  std::memset(p, 0, n);
  return p;
}

void aligned_free(void* p) { std::free(p); }

void Context::freeAll() {
  for (auto* b : bufs)
    if (b) {
      aligned_free(b->data);
      delete b;
    }
  for (auto* w : weights) delete w;
  arena.clear();
  for (auto* k : kvs)
    if (k) free_kv(k);
  bufs.clear();
  weights.clear();
  kvs.clear();
}

}  // namespace loom
