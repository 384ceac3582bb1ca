#include "weight_arena.h"

#include "context.h"

namespace loom {

namespace {
constexpr size_t kChunkBytes = size_t(32) << 20;
constexpr size_t kAlign = 64;
}  // namespace

void* WeightArena::alloc(size_t bytes) {
  const size_t n = bytes ? (bytes + kAlign - 1) / kAlign * kAlign : kAlign;
  if (n > kChunkBytes / 4) {
    // a big matrix takes a chunk of its own (aligned_zalloc puts it on huge pages), leaving the shared
    // chunk's room to the small ones that follow it
    void* p = aligned_zalloc(n);
    if (!p) return nullptr;
    chunks_.push_back(Chunk{static_cast<char*>(p), n, n, 1, false});
    return p;
  }
  for (auto it = chunks_.rbegin(); it != chunks_.rend(); ++it)
    if (it->shared) {
      if (it->size - it->used < n) break;
      void* p = it->base + it->used;
      it->used += n;
      it->live++;
      return p;
    }
  void* base = aligned_zalloc(kChunkBytes);
  if (!base) return nullptr;
  chunks_.push_back(Chunk{static_cast<char*>(base), kChunkBytes, n, 1, true});
  return base;
}

void WeightArena::release(void* p) {
  if (!p) return;
  const char* q = static_cast<const char*>(p);
  for (size_t i = 0; i < chunks_.size(); i++) {
    Chunk& ch = chunks_[i];
    if (q < ch.base || q >= ch.base + ch.size) continue;
    if (--ch.live == 0) {
      aligned_free(ch.base);
      chunks_.erase(chunks_.begin() + (long)i);
    }
    return;
  }
}

void WeightArena::clear() {
  for (auto& ch : chunks_) aligned_free(ch.base);
  chunks_.clear();
}

}  // namespace loom
