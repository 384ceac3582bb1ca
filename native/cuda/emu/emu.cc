// CPU emulation of the CUDA runtime for the Loom kernels (see cuda_runtime.h): fibers for threads, a
// cooperative scheduler that switches at barriers and warp shuffles, synchronous streams with graph
// capture, and plain host memory for device memory.
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define LOOM_EMU_ASAN 1
#endif

// ---- context switch (x86-64 System V): saves callee-saved registers, MXCSR and the x87 control word ----

extern "C" void loom_emu_switch(void** from_sp, void* to_sp);
asm(R"(
.text
.globl loom_emu_switch
.type loom_emu_switch,@function
loom_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size loom_emu_switch,.-loom_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");

namespace emu {

namespace {

constexpr size_t STACK_BYTES = 256 * 1024;
constexpr int MAX_THREADS = 1024;

enum State { READY, AT_BARRIER, AT_SHFL, DONE };

struct Fiber {
  void* sp = nullptr;
  void* fake = nullptr;  // AddressSanitizer fake stack
  char* stack = nullptr;
  State state = DONE;
  uint64_t shflVal = 0;
  int shflArg = 0;
  int shflKind = 0;
  uint64_t shflOut = 0;
};

struct Scheduler {
  Fiber fibers[MAX_THREADS];
  void* schedSp = nullptr;
  int current = -1;
  int nthreads = 0;
  const std::function<void()>* body = nullptr;
  std::vector<char> smem;
  bool inGrid = false;
  void* schedFake = nullptr;
  const void* mainBottom = nullptr;
  size_t mainSize = 0;

  Scheduler() {
    for (auto& f : fibers) {
      void* p = mmap(nullptr, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) throw std::runtime_error("emu: cannot map fiber stacks");
      f.stack = (char*)p;
    }
  }
};

Scheduler& sched() {
  static Scheduler* s = new Scheduler();
  return *s;
}

[[noreturn]] void fail(const std::string& msg) {
  std::fprintf(stderr, "loom CUDA emulation: %s\n", msg.c_str());
  std::abort();
}

void switch_to_scheduler(Scheduler& s) {
  Fiber& f = s.fibers[s.current];
#ifdef LOOM_EMU_ASAN
  __sanitizer_start_switch_fiber(f.state == DONE ? nullptr : &f.fake, s.mainBottom, s.mainSize);
#endif
  loom_emu_switch(&f.sp, s.schedSp);
#ifdef LOOM_EMU_ASAN
  __sanitizer_finish_switch_fiber(s.fibers[s.current].fake, &s.mainBottom, &s.mainSize);
#endif
}

extern "C" void loom_emu_fiber_entry() {
  Scheduler& s = sched();
#ifdef LOOM_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &s.mainBottom, &s.mainSize);
#endif
  (*s.body)();
  s.fibers[s.current].state = DONE;
  switch_to_scheduler(s);
  fail("a finished fiber was resumed");
}

/** A fresh stack whose first switch "returns" into loom_emu_fiber_entry. */
void* init_stack(Fiber& f) {
#ifdef LOOM_EMU_ASAN
  // Frames of the fiber's previous run were abandoned, not unwound: clear their redzones.
  __asan_unpoison_memory_region(f.stack, STACK_BYTES);
#endif
  uintptr_t top = (uintptr_t)(f.stack + STACK_BYTES);
  top &= ~(uintptr_t)15;
  uint64_t* sp = (uint64_t*)top;
  *--sp = 0;                                   // padding: the return-address slot lands 16-aligned
  *--sp = (uint64_t)&loom_emu_fiber_entry;     // return address
  for (int i = 0; i < 6; i++) *--sp = 0;       // rbp rbx r12 r13 r14 r15
  --sp;                                        // mxcsr + x87 control word
  uint32_t mxcsr = 0x1f80;
  uint16_t fpucw = 0x037f;
  std::memcpy((char*)sp, &mxcsr, 4);
  std::memcpy((char*)sp + 4, &fpucw, 2);
  return sp;
}

void resume(Scheduler& s, int t) {
  s.current = t;
  threadIdx.x = (unsigned)(t % blockDim.x);
  threadIdx.y = (unsigned)((t / blockDim.x) % blockDim.y);
  threadIdx.z = (unsigned)(t / (blockDim.x * blockDim.y));
  Fiber& f = s.fibers[t];
  f.state = READY;
#ifdef LOOM_EMU_ASAN
  __sanitizer_start_switch_fiber(&s.schedFake, f.stack, STACK_BYTES);
#endif
  loom_emu_switch(&s.schedSp, f.sp);
#ifdef LOOM_EMU_ASAN
  __sanitizer_finish_switch_fiber(s.schedFake, nullptr, nullptr);
#endif
}

void run_block(Scheduler& s) {
  const int n = s.nthreads;
  for (int t = 0; t < n; t++) {
    s.fibers[t].sp = init_stack(s.fibers[t]);
    s.fibers[t].state = READY;
  }
  for (;;) {
    bool ran = false;
    for (int t = 0; t < n; t++) {
      if (s.fibers[t].state == READY) {
        resume(s, t);
        ran = true;
      }
    }
    // Release warps whose live lanes all wait at a shuffle.
    bool released = false;
    int live = 0, atBarrier = 0;
    for (int w = 0; w * 32 < n; w++) {
      const int l0 = w * 32, l1 = l0 + 32 < n ? l0 + 32 : n;
      int waiting = 0, done = 0;
      for (int t = l0; t < l1; t++) {
        waiting += s.fibers[t].state == AT_SHFL;
        done += s.fibers[t].state == DONE;
      }
      if (waiting == 0) continue;
      if (waiting + done != l1 - l0) continue;  // some lanes still elsewhere (a barrier): not yet
      if (done) fail("warp shuffle with exited lanes (blockIdx " + std::to_string(blockIdx.x) + ")");
      for (int t = l0; t < l1; t++) {
        Fiber& f = s.fibers[t];
        const int lane = t - l0;
        int src = f.shflKind == 0 ? (lane ^ f.shflArg) : (lane - f.shflArg);
        if (f.shflKind == 1 && src < 0) src = lane;
        if (src >= l1 - l0) src = lane;
        f.shflOut = s.fibers[l0 + src].shflVal;
      }
      for (int t = l0; t < l1; t++) s.fibers[t].state = READY;
      released = true;
    }
    for (int t = 0; t < n; t++) {
      live += s.fibers[t].state != DONE;
      atBarrier += s.fibers[t].state == AT_BARRIER;
    }
    if (live == 0) return;
    if (!released && atBarrier == live) {
      for (int t = 0; t < n; t++)
        if (s.fibers[t].state == AT_BARRIER) s.fibers[t].state = READY;
      released = true;
    }
    if (!ran && !released) {
      fail("deadlock in block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + "," +
           std::to_string(blockIdx.z) + "): threads wait at barriers and shuffles that cannot complete");
    }
  }
}

}  // namespace

void run_grid(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  Scheduler& s = sched();
  if (s.inGrid) fail("nested kernel launch");
  const long threads = (long)block.x * block.y * block.z;
  if (threads <= 0 || threads > MAX_THREADS) fail("bad block size " + std::to_string(threads));
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) fail("empty grid");
  if (grid.y > 65535 || grid.z > 65535) fail("grid y/z above 65535");
  s.inGrid = true;
  s.body = &body;
  s.nthreads = (int)threads;
  gridDim = grid;
  blockDim = block;
  s.smem.assign(smem + 16, 0x7f);  // garbage-ish fill: kernels must not read shared memory they did not write
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        blockIdx.x = x;
        blockIdx.y = y;
        blockIdx.z = z;
        run_block(s);
      }
  s.inGrid = false;
}

void* dynamic_smem() { return sched().smem.data(); }

void barrier() {
  Scheduler& s = sched();
  if (!s.inGrid) fail("__syncthreads outside a kernel");
  s.fibers[s.current].state = AT_BARRIER;
  switch_to_scheduler(s);
}

uint64_t shfl(uint64_t v, int arg, int kind) {
  Scheduler& s = sched();
  if (!s.inGrid) fail("shuffle outside a kernel");
  Fiber& f = s.fibers[s.current];
  f.shflVal = v;
  f.shflArg = arg;
  f.shflKind = kind;
  f.state = AT_SHFL;
  switch_to_scheduler(s);
  return s.fibers[s.current].shflOut;
}

}  // namespace emu

// ---- streams, graphs, memory ------------------------------------------------------------------------------

struct EmuGraph {
  std::vector<std::function<void()>> work;
};
struct EmuStream {
  EmuGraph* capture = nullptr;
};

namespace emu {
void enqueue(cudaStream_t s, std::function<void()> work) {
  if (s && s->capture) s->capture->work.push_back(std::move(work));
  else work();
}
}  // namespace emu

namespace {
cudaError_t g_last = cudaSuccess;
size_t g_allocated = 0;
constexpr size_t kTotal = 8ull << 30;
}  // namespace

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    default: return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }
cudaError_t cudaGetLastError() {
  cudaError_t e = g_last;
  g_last = cudaSuccess;
  return e;
}
cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::strcpy(p->name, "emulated CUDA device (CPU)");
  p->totalGlobalMem = kTotal;
  p->sharedMemPerBlockOptin = 227 * 1024;
  p->multiProcessorCount = 8;
  p->major = 9;
  p->minor = 0;
  p->l2CacheSize = 50 << 20;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* freeB, size_t* totalB) {
  *totalB = kTotal;
  *freeB = g_allocated < kTotal ? kTotal - g_allocated : 0;
  return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = std::malloc(bytes);  // malloc (not aligned_alloc) so that AddressSanitizer bounds it exactly
  if (!*p) return cudaErrorMemoryAllocation;
  std::memset(*p, 0xcd, bytes);  // device memory starts as garbage
  g_allocated += bytes;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = std::malloc(bytes);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t s) {
  emu::enqueue(s, [=] { std::memcpy(dst, src, bytes); });
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s) {
  emu::enqueue(s, [=] { std::memset(dst, value, bytes); });
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = new EmuStream();
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (s && s->capture) return cudaErrorInvalidValue;  // not allowed while capturing
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  *e = new int(0);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t s) {
  if (s && s->capture) return cudaErrorInvalidValue;  // the Loom context never records events in a capture
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  if (!s || s->capture) return cudaErrorInvalidValue;
  s->capture = new EmuGraph();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  if (!s || !s->capture) return cudaErrorInvalidValue;
  *g = s->capture;
  s->capture = nullptr;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long) {
  *exec = new EmuGraph(*g);
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (s && s->capture) return cudaErrorInvalidValue;
  for (auto& w : exec->work) w();
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t g) {
  delete g;
  return cudaSuccess;
}
