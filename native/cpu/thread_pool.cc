#include "thread_pool.h"

#include <chrono>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LOOM_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define LOOM_PAUSE() asm volatile("yield")
#else
#define LOOM_PAUSE() std::this_thread::yield()
#endif
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace loom {

namespace {
/** How long a helper spins for the next job, and the caller for stragglers, before sleeping. */
constexpr auto kSpin = std::chrono::microseconds(150);
constexpr uint32_t kInvalidEpoch = 0xffffffffu;

#ifdef __linux__
void futex_wait(std::atomic<uint32_t>* a, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(a), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void futex_wake(std::atomic<uint32_t>* a, int n) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(a), FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
}
#endif

template <class P>
bool spin_until(P pred) {
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (pred()) return true;
      LOOM_PAUSE();
    }
    if (std::chrono::steady_clock::now() - start > kSpin) return pred();
  }
}
}  // namespace

ThreadPool::ThreadPool(int nthreads) : n_(nthreads < 1 ? 1 : nthreads) {
  for (auto& s : slots_) {
    s.cursors.reset(new Cursor[n_]);
    s.epoch.store(kInvalidEpoch);
  }
  threads_.reserve(n_ - 1);
  for (int t = 1; t < n_; t++) threads_.emplace_back([this, t] { workerLoop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
#ifdef __linux__
  epochWord_.fetch_add(1, std::memory_order_seq_cst);
  futex_wake(&epochWord_, 1 << 30);
#else
  {
    std::lock_guard<std::mutex> lk(mu_);
    epochWord_.fetch_add(1);
  }
  cvJob_.notify_all();
#endif
  for (auto& t : threads_) t.join();
}

/** Chunks of a job of `units` align-units on `parts` threads: `split` per thread, at most one unit each. */
static long chunk_count(long units, int parts, int split) {
  return units < (long)parts * split ? units : (long)parts * split;
}

void ThreadPool::firstChunk(long n, long align, int parts, int split, int part, long* begin, long* end) {
  const long chunks = chunk_count((n + align - 1) / align, parts, split);
  long cb, ce;
  chunk_range(chunks, part, parts, 1, &cb, &ce);
  if (cb >= ce) {
    *begin = *end = n;
    return;
  }
  chunk_range(n, cb, chunks, align, begin, end);
}

void ThreadPool::participate(Slot& s, int tid) {
  const int parts = s.parts;
  const int first = tid % parts;
  for (int k = 0; k < parts; k++) {
    const int p = (first + k) % parts;  // own run first, then steal from the others in turn
    long cb, ce;
    chunk_range(s.chunks, p, parts, 1, &cb, &ce);
    for (;;) {
      long i = cb + s.cursors[p].next.fetch_add(1, std::memory_order_relaxed);
      if (i >= ce) break;
      long b, e;
      chunk_range(s.n, i, s.chunks, s.align, &b, &e);
      s.body(s.ctx, b, e, tid);
      if (s.done.fetch_add(1, std::memory_order_seq_cst) + 1 == (uint32_t)s.chunks &&
          callerWaiting_.load(std::memory_order_seq_cst)) {
#ifdef __linux__
        futex_wake(&s.done, 1);
#else
        std::lock_guard<std::mutex> lk(mu_);
        cvDone_.notify_all();
#endif
      }
    }
  }
}

void ThreadPool::workerLoop(int tid) {
  // Start from epoch 0, not from the current value: a thread that starts late (after jobs, or after the
  // destructor's wake-up) must still notice them.
  uint32_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return epochWord_.load(std::memory_order_acquire) != seen || stop_.load(); })) {
#ifdef __linux__
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      while (epochWord_.load(std::memory_order_seq_cst) == seen && !stop_.load(std::memory_order_seq_cst))
        futex_wait(&epochWord_, seen);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
#else
      std::unique_lock<std::mutex> lk(mu_);
      cvJob_.wait(lk, [&] { return epochWord_.load() != seen || stop_.load(); });
#endif
    }
    if (stop_.load(std::memory_order_seq_cst)) return;
    const uint32_t e = epochWord_.load(std::memory_order_acquire);
    seen = e;
    Slot& s = slots_[e % kSlots];
    s.active.fetch_add(1, std::memory_order_seq_cst);
    IdleWork work{};
    if (s.epoch.load(std::memory_order_seq_cst) == e) {
      participate(s, tid);
      work = s.idle;  // copied while the slot cannot be reused
    }
    s.active.fetch_sub(1, std::memory_order_seq_cst);
    if (work.run) work.run(work.args, tid, StopToken{&epochWord_, e});
  }
}

void ThreadPool::parallelFor(long n, long align, int maxThreads, Body body, void* ctx, int split,
                             const IdleWork* idle) {
  if (n <= 0) return;
  if (align < 1) align = 1;
  const long units = (n + align - 1) / align;
  int nt = maxThreads < 1 ? 1 : maxThreads > n_ ? n_ : maxThreads;
  if (nt > units) nt = (int)units;
  if (nt <= 1) {
    body(ctx, 0, n, 0);
    return;
  }
  const uint32_t e = epoch_ + 1 == kInvalidEpoch ? 1 : epoch_ + 1;
  Slot& s = slots_[e % kSlots];
  // Reuse guard: a helper that joined this slot's previous job may still be leaving it.
  s.epoch.store(kInvalidEpoch, std::memory_order_seq_cst);
  while (s.active.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  s.body = body;
  s.ctx = ctx;
  s.n = n;
  s.align = align;
  s.parts = nt;
  s.chunks = chunk_count(units, nt, split);
  for (int p = 0; p < nt; p++) s.cursors[p].next.store(0, std::memory_order_relaxed);
  s.done.store(0, std::memory_order_relaxed);
  s.idle = idle ? *idle : IdleWork{};
  s.epoch.store(e, std::memory_order_seq_cst);
  epoch_ = e;
#ifdef __linux__
  epochWord_.store(e, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst)) futex_wake(&epochWord_, 1 << 30);
#else
  {
    std::lock_guard<std::mutex> lk(mu_);
    epochWord_.store(e);
  }
  cvJob_.notify_all();
#endif
  participate(s, 0);
  const uint32_t total = (uint32_t)s.chunks;
  if (!spin_until([&] { return s.done.load(std::memory_order_acquire) == total; })) {
    callerWaiting_.store(1, std::memory_order_seq_cst);
#ifdef __linux__
    for (;;) {
      uint32_t d = s.done.load(std::memory_order_seq_cst);
      if (d == total) break;
      futex_wait(&s.done, d);
    }
#else
    {
      std::unique_lock<std::mutex> lk(mu_);
      cvDone_.wait(lk, [&] { return s.done.load() == total; });
    }
#endif
    callerWaiting_.store(0, std::memory_order_relaxed);
  }
}

}  // namespace loom
