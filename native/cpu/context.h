// The per-backend native state: thread pool, kernel table, owned objects (buffers, weights, KV layers)
// addressed by small integer ids from JS, the current step's metadata and reusable scratch.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "thread_pool.h"
#include "weight_arena.h"

namespace loom {

/** 64-byte aligned, zero-initialized allocation (nullptr on failure). */
void* aligned_zalloc(size_t bytes);
void aligned_free(void* p);

/** Grow-only aligned scratch. */
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { aligned_free(p_); }
  float* floats(size_t n) {
    if (n > cap_) {
      aligned_free(p_);
      cap_ = n + n / 4 + 64;
      p_ = static_cast<float*>(aligned_zalloc(cap_ * sizeof(float)));
      if (!p_) {
        cap_ = 0;
        throw std::bad_alloc();
      }
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  size_t cap_ = 0;
};

struct BufferT {
  float* data;
  size_t size;
};

struct WeightT {
  MatW mat;  // for vectors: storage f32, N = length, K = Kp = 0
  bool isVector;
  void* data;    // owns the matrix (rows of codes and scales) or vector
  size_t bytes;  // storage bytes
  /** The weight the GEMV after this one multiplied last time (learned by matmul.cc, for idle prefetch). */
  mutable const WeightT* nextGemv = nullptr;
};

struct StepMetaN {
  uint64_t gen = 0;
  int numTokens = 0, numSeqs = 0, maxBlocksPerSeq = 0;
  std::vector<int32_t> tokenIds, positions, slotMapping, queryStart, seqLens, blockTables;
};

bool cpu_supports_avx2();
bool cpu_supports_avx512();
bool cpu_supports_avx512_vnni();
bool cpu_supports_avx512_bf16();
bool cpu_supports_amx();

struct Context {
  Context(int threads, const KernelTable* k) : K(k), pool(new ThreadPool(threads)), perThread(pool->size()) {}
  ~Context() {
    pool.reset();  // helpers may be running idle work that touches this context (idlePrefetches)
    freeAll();
  }
  void freeAll();

  const KernelTable* K;
  std::unique_ptr<ThreadPool> pool;
  std::vector<BufferT*> bufs;
  std::vector<WeightT*> weights;
  WeightArena arena;  // every weight's storage (data)
  std::vector<KvLayerT*> kvs;
  StepMetaN meta;
  bool hasStep = false;

  // GEMV idle prefetch (matmul.cc): the weight of the last GEMV, so the next one can be recorded as its
  // successor; whether helpers prefetch it; how many helper runs did (a test and benchmark hook).
  const WeightT* lastGemv = nullptr;
  bool idlePrefetch = true;
  std::atomic<uint64_t> idlePrefetches{0};
  /** int8/int4 weights loaded from then on go into panels for quant_panels.inc where the build and CPU have it
   * (off: row-major, the GEMV and f32 panel GEMM of AVX-512 CPUs without VNNI, for tests). */
  bool quantPanels = true;
  bool useQuantPanels() const { return quantPanels && K->qpRows && cpu_supports_avx512_vnni(); }
  bool bf16Dot = true;
  bool useBf16Dot() const { return bf16Dot && K->bf16Dot && cpu_supports_avx512_bf16(); }

  /** Drops every reference to `w` (before it is freed). */
  void forgetWeight(const WeightT* w) {
    if (lastGemv == w) lastGemv = nullptr;
    for (auto* o : weights)
      if (o && o->nextGemv == w) o->nextGemv = nullptr;
  }

  // scratch
  Scratch xpad, xt, ropeCos, ropeSin;
  std::vector<Scratch> perThread;  // one per pool thread
  std::vector<AttnTask> attnTasks;
  // rope table cache (valid for meta.gen)
  uint64_t ropeGen = ~0ull;
  int ropeRows = -1, ropeHalf = -1;
  float ropeFactor = 0;
  std::vector<float> ropeInvFreq;

  /** Grows every thread's scratch to n floats (on the calling thread, so workers never allocate). */
  void reserveThreadScratch(size_t n) {
    for (auto& s : perThread) s.floats(n);
  }
  /** Thread tid's scratch; reserveThreadScratch(n) must have been called. */
  float* threadScratch(int tid, size_t n) { return perThread[tid].floats(n); }
};

// ---- drivers (one file each) ----
/** quant.cc: converts a checkpoint tensor into a native weight (quantizing if asked). */
WeightT* make_weight(Context& c, const uint8_t* src, int srcDtype, int rows, int cols, int storage);
/** An int8/int4 matrix from codes and scales laid out as src/formats/quant.ts describes (no rounding). */
WeightT* make_weight_quantized(Context& c, int storage, int rows, int cols, const void* q, const float* scales);

void matmul(Context& c, float* y, const float* x, const WeightT& w, const float* bias, int rows);

void rms_norm(Context& c, float* out, const float* x, const float* w, int rows, int dim, float eps, bool plusOne);
void add_rms_norm(Context& c, float* out, float* res, const float* x, const float* w, int rows, int dim, float eps,
                  bool plusOne);
void head_norm(Context& c, float* x, int rows, int rowStride, int offset, int numHeads, int headDim, const float* w,
               float eps, bool plusOne);
void rope(Context& c, float* x, int rows, int rowStride, int offset, int numHeads, int headDim, int rotaryDim,
          const float* invFreq, float attentionFactor);
void gated_act(Context& c, float* out, const float* gu, int rows, int inter, int act);
void add(Context& c, float* a, const float* b, size_t n);
void embed(Context& c, float* out, const WeightT& table, float scale);

KvLayerT* make_kv(int numBlocks, int blockSize, int numKvHeads, int headDim, int dtype);
void free_kv(KvLayerT* kv);
void write_kv(Context& c, KvLayerT& kv, const float* qkv, int rowStride, int kOffset, int vOffset);
void copy_blocks(KvLayerT& kv, const int32_t* src, const int32_t* dst, int n);

void attention(Context& c, float* out, const float* qkv, int rowStride, const KvLayerT& kv, int numHeads,
               int numKvHeads, int headDim, float scale, int window, float softcap);

/** dispatch.cc: the kernel table for `want` ("" = best available); nullptr and *err when unavailable. */
const KernelTable* select_kernels(const std::string& want, std::string* err);

/** Items of work below which an op runs on the calling thread only. */
constexpr double kParallelMinWork = 32768;
static inline int threads_for(const Context& c, double work) {
  return work < kParallelMinWork ? 1 : c.pool->size();
}

}  // namespace loom
