// A persistent thread pool with a static-chunked parallel-for that tolerates descheduled threads.
//
// parallelFor splits [0, n) into contiguous chunks: thread t owns the t-th run of `split` chunks (the
// static partition: with no interference every thread processes exactly its own contiguous range, as
// plain static chunking would). A thread that finishes its own run steals unclaimed chunks from the
// others, so when a helper is descheduled (an oversubscribed machine, a noisy VM) the job still ends
// as soon as the work is done; it never waits for a thread that has not started.
//
// The calling thread is worker 0. Helpers spin briefly after each job (ops of a forward pass come back
// to back), then sleep on a futex (a condition variable off Linux). Jobs live in a ring of slots tagged
// with an epoch, so a helper that wakes late can only join the job it saw, never the next one.
//
// A job may carry idle work (IdleWork) that each helper runs after its share of the job, until the next
// job is published: matmul.cc prefetches the next matrix a decode step multiplies while the caller runs
// the small ops in between, so DRAM keeps streaming weights through those gaps.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace loom {

/** [begin, end) of chunk `i` of `n` items split into `parts` near-equal contiguous chunks aligned to `align`. */
static inline void chunk_range(long n, long i, long parts, long align, long* begin, long* end) {
  long units = (n + align - 1) / align;
  long per = units / parts, extra = units % parts;
  long ub = i * per + (i < extra ? i : extra);
  long ue = ub + per + (i < extra ? 1 : 0);
  *begin = ub * align < n ? ub * align : n;
  *end = ue * align < n ? ue * align : n;
}

/** Tells idle work a helper runs after its share of a job whether a new job has been published. */
struct StopToken {
  const std::atomic<uint32_t>* epochWord;
  uint32_t seen;
  bool operator()() const { return epochWord->load(std::memory_order_relaxed) != seen; }
};

/**
 * Work a helper may do once its share of a job is done and no new job is waiting (say, prefetching what
 * the next op reads while the caller runs small ops on its own). `args` is copied with the job, so it may
 * not point into the caller's stack. Must return promptly once stop() is true.
 */
struct IdleWork {
  void (*run)(const unsigned char* args, int tid, const StopToken& stop);
  alignas(8) unsigned char args[64];
};

class ThreadPool {
 public:
  /** body(ctx, begin, end, tid): tid identifies the executing thread (0 = caller), for per-thread scratch. */
  using Body = void (*)(void* ctx, long begin, long end, int tid);

  explicit ThreadPool(int nthreads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_; }

  /** Items [*begin, *end) that thread `part` of `parts` takes first in parallelFor(n, align, parts, …, split)
   * (the first chunk of its own run, which it processes unless another thread stole it). */
  static void firstChunk(long n, long align, int parts, int split, int part, long* begin, long* end);

  /**
   * Runs body over [0, n) in chunks aligned to `align` on up to `maxThreads` threads (1: inline on the
   * caller). `split` chunks per thread: more gives finer balancing, fewer keeps ranges contiguous.
   */
  void parallelFor(long n, long align, int maxThreads, Body body, void* ctx, int split = 4,
                   const IdleWork* idle = nullptr);

  template <class F>
  void parallelFor(long n, long align, int maxThreads, F& f, int split = 4, const IdleWork* idle = nullptr) {
    parallelFor(
        n, align, maxThreads, [](void* c, long b, long e, int tid) { (*static_cast<F*>(c))(b, e, tid); }, &f, split,
        idle);
  }

 private:
  struct alignas(64) Cursor {
    std::atomic<long> next{0};
  };
  struct Slot {
    std::atomic<uint32_t> epoch{0};
    std::atomic<int> active{0};
    Body body = nullptr;
    void* ctx = nullptr;
    long n = 0, align = 1, chunks = 0;
    int parts = 1;
    IdleWork idle{};  // run == nullptr: none
    std::unique_ptr<Cursor[]> cursors;
    alignas(64) std::atomic<uint32_t> done{0};
  };
  static constexpr int kSlots = 4;

  void workerLoop(int tid);
  void participate(Slot& s, int tid);

  int n_;
  std::vector<std::thread> threads_;
  Slot slots_[kSlots];
  uint32_t epoch_ = 0;  // last published (caller only)
  alignas(64) std::atomic<uint32_t> epochWord_{0};
  alignas(64) std::atomic<uint32_t> sleepers_{0};
  std::atomic<uint32_t> callerWaiting_{0};
  std::atomic<bool> stop_{false};
#ifndef __linux__
  std::mutex mu_;
  std::condition_variable cvJob_, cvDone_;
#endif
};

}  // namespace loom
