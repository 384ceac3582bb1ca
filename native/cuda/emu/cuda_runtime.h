// CPU emulation of the parts of the CUDA runtime and device language the Loom kernels use, so that the
// kernel source in native/cuda runs unchanged on a CPU (scripts/build-cuda.mjs --emulate; tests on
// machines without a GPU). Not a general CUDA emulator:
//
// - A grid runs block after block; a block's threads are fibers on the calling OS thread, switched only at
//   __syncthreads() and warp shuffles (so memory is sequentially consistent and data races cannot show).
// - Warp shuffles need all 32 lanes of the warp at a shuffle (full masks only); a lane that exits while
//   the others wait is reported as a deadlock, as is a barrier not reached by every live thread.
// - __shared__ variables are function statics (blocks run one at a time); dynamic shared memory comes
//   from LOOM_DYNAMIC_SMEM.
// - Streams are synchronous, except that launches and copies on a capturing stream are recorded into a
//   graph that cudaGraphLaunch replays.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <utility>

#define LOOM_CUDA_EMULATION 1
#define CUDART_VERSION 13000

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint2 {
  unsigned x, y;
};
struct uint4 {
  unsigned x, y, z, w;
};
struct float2 {
  float x, y;
};
struct float4 {
  float x, y, z, w;
};

inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

// ---- runtime API --------------------------------------------------------------------------------------

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
constexpr unsigned cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDisableTiming = 2;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlockOptin;
  int multiProcessorCount;
  int major;
  int minor;
  int l2CacheSize;
};

struct EmuStream;
struct EmuGraph;
using cudaStream_t = EmuStream*;
using cudaEvent_t = int*;
using cudaGraph_t = EmuGraph*;
using cudaGraphExec_t = EmuGraph*;

const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaMemGetInfo(size_t* freeB, size_t* totalB);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t g);
template <typename F>
cudaError_t cudaFuncSetAttribute(F*, cudaFuncAttribute, int) {
  return cudaSuccess;
}

namespace emu {

/** Runs `body` (one thread's view of a kernel call) for every thread of every block of the grid. */
void run_grid(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);
/** Runs `work` now, or records it when `s` is capturing a graph. */
void enqueue(cudaStream_t s, std::function<void()> work);
/** Dynamic shared memory of the running block. */
void* dynamic_smem();
void barrier();
/** Warp shuffles on 64-bit payloads: kind 0 = xor, 1 = up. */
uint64_t shfl(uint64_t v, int arg, int kind);

inline dim3 as_dim3(dim3 d) { return d; }
inline dim3 as_dim3(long n) { return dim3((unsigned)n); }

template <typename... P>
struct Launcher {
  dim3 g, b;
  size_t smem;
  cudaStream_t s;
  void (*k)(P...);
  template <typename... A>
  void operator()(A&&... a) const {
    auto kernel = k;
    std::tuple<P...> args(std::forward<A>(a)...);
    dim3 gg = g, bb = b;
    size_t sm = smem;
    enqueue(s, [=] { run_grid(gg, bb, sm, [&] { std::apply(kernel, args); }); });
  }
};
template <typename G, typename B, typename... P>
Launcher<P...> make_launcher(G g, B b, size_t smem, cudaStream_t s, void (*k)(P...)) {
  return Launcher<P...>{as_dim3(g), as_dim3(b), smem, s, k};
}

}  // namespace emu

#define LOOM_LAUNCH(grid, block, smem, stream, ...) ::emu::make_launcher(grid, block, (size_t)(smem), stream, __VA_ARGS__)
#define LOOM_DYNAMIC_SMEM(T, name) T* name = static_cast<T*>(::emu::dynamic_smem())

// ---- device functions ------------------------------------------------------------------------------------

inline void __syncthreads() { emu::barrier(); }
/** Fibers switch only at barriers and shuffles, so a warp is always converged here. */
inline void __syncwarp(unsigned = 0xffffffffu) {}

template <typename T>
inline T emu_shfl(T v, int arg, int kind) {
  static_assert(sizeof(T) <= 8, "shuffle payload");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = emu::shfl(bits, arg, kind);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int lane_mask, int = 32) {
  return emu_shfl(v, lane_mask, 0);
}
template <typename T>
inline T __shfl_up_sync(unsigned, T v, unsigned delta, int = 32) {
  return emu_shfl(v, (int)delta, 1);
}

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
template <typename T>
inline T __ldcg(const T* p) {
  return *p;
}
/** Blocks run one after another, so every write is already visible to the next. */
inline void __threadfence() {}
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  unsigned old = *p;
  *p = old + v;
  return old;
}
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  unsigned long long old = *p;
  *p = old + v;
  return old;
}
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}
// The compiler must not contract these (build with -ffp-contract=off).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }

template <typename T>
inline T min(T a, T b) {
  return b < a ? b : a;
}
template <typename T>
inline T max(T a, T b) {
  return a < b ? b : a;
}
using std::isfinite;
using std::isnan;

#include "cuda_bf16.h"
#include "cuda_fp16.h"
