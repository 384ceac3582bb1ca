// Weight storage carved out of large chunks on transparent huge pages.
#pragma once
#include <cstddef>
#include <vector>

namespace loom {

/**
 * Weights are streamed from DRAM every decode step. Each big allocation of its own gets 2 MB pages
 * (aligned_zalloc), but a model's many 1–3 MB matrices (the 360M shape's q/k/v, o and down projections:
 * 45% of its bytes) would sit on 4 KB ones. The arena carves weights one after another out of 32 MB chunks
 * on 2 MB pages; blocks are never reused, and a chunk goes back to the system once every block in it is
 * released. Not thread-safe: weights are allocated and freed on the JS thread.
 */
class WeightArena {
 public:
  WeightArena() = default;
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;
  ~WeightArena() { clear(); }

  /** A zeroed, 64-byte-aligned block of `bytes`, or nullptr when out of memory. */
  void* alloc(size_t bytes);
  /** Gives back a block from alloc (nullptr is ignored). */
  void release(void* p);
  /** Frees every chunk (the blocks in them are gone). */
  void clear();
  /** Chunks held now (a test hook). */
  size_t chunks() const { return chunks_.size(); }

 private:
  struct Chunk {
    char* base;
    size_t size, used;
    long live;     // blocks not yet released
    bool shared;   // carved for many blocks (else one block of its own)
  };
  std::vector<Chunk> chunks_;
};

}  // namespace loom
