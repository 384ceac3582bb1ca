// Sampling on the GPU, one 1024-thread block per row of logits, so that only the chosen ids (and their
// logprobs) travel back to the host instead of rows × vocab floats.
//
//   greedy:   argmax (ties → lowest id), as src/sampler/sampler.ts argmax
//   sampled:  temperature → top-k → top-p → min-p → inverse-CDF draw in vocabulary order with the host's
//             uniform u (the sequence's own rng stays on the host, so seeds keep working)
//
// Truncation without sorting:
//   top-k: radix select (4 passes of 8 bits over order-preserving uint32 keys of the logits) finds the
//          k-th largest logit exactly; every logit ≥ it is kept (ties at the boundary are all kept).
//   top-p: the same radix search over the bits of the weights w = e^((x − max)/T) ∈ (0, 1], with the mass
//          per bucket summed in 2^-32 fixed point (integer atomics, so the result is deterministic), finds
//          the smallest weight threshold whose kept mass reaches p·total; ties at the threshold are kept.
//   min-p:    w ≥ minP (the top token has w = 1).
// The draw is distributionally what the host sampler does, not draw-for-draw identical (the host walks its
// candidates in another order). Penalties, logit bias and min_tokens are host-side only.
#include "device_util.cuh"
#include "kernels.h"

namespace loom_cuda {

namespace {

constexpr int SAMPLE_THREADS = 1024;

__device__ __forceinline__ float capped(float x, float cap) { return cap > 0.0f ? cap * tanhf(x / cap) : x; }

/** Order-preserving map of a float onto uint32 (larger float → larger key). */
__device__ __forceinline__ unsigned int order_key(float x) {
  const unsigned int b = __float_as_uint(x);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

struct ArgMax {
  float v;
  int i;
};
__device__ __forceinline__ ArgMax better(ArgMax a, ArgMax b) {
  return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}

__device__ ArgMax block_argmax(ArgMax a, float* redv, int* redi) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    ArgMax b{__shfl_xor_sync(0xffffffffu, a.v, o), __shfl_xor_sync(0xffffffffu, a.i, o)};
    a = better(a, b);
  }
  __syncthreads();
  if (lane == 0) {
    redv[warp] = a.v;
    redi[warp] = a.i;
  }
  __syncthreads();
  ArgMax t = lane < nw ? ArgMax{redv[lane], redi[lane]} : ArgMax{-INFINITY, 0x7fffffff};
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    ArgMax b{__shfl_xor_sync(0xffffffffu, t.v, o), __shfl_xor_sync(0xffffffffu, t.i, o)};
    t = better(t, b);
  }
  return t;
}

/** Running (max, Σ e^(x − max)) of a log-sum-exp. */
struct Lse {
  float m;
  float s;
};
__device__ __forceinline__ Lse lse_add(Lse a, float x) {
  if (x == -INFINITY || x != x) return a;
  if (x > a.m) return Lse{x, a.s * expf(a.m - x) + 1.0f};
  return Lse{a.m, a.s + expf(x - a.m)};
}
__device__ __forceinline__ Lse lse_merge(Lse a, Lse b) {
  if (b.s == 0.0f) return a;
  if (a.s == 0.0f) return b;
  const float m = fmaxf(a.m, b.m);
  return Lse{m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}
__device__ Lse block_lse(Lse a, float* redm, float* reds) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    a = lse_merge(a, Lse{__shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o)});
  }
  __syncthreads();
  if (lane == 0) {
    redm[warp] = a.m;
    reds[warp] = a.s;
  }
  __syncthreads();
  Lse t = lane < nw ? Lse{redm[lane], reds[lane]} : Lse{-INFINITY, 0.0f};
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    t = lse_merge(t, Lse{__shfl_xor_sync(0xffffffffu, t.m, o), __shfl_xor_sync(0xffffffffu, t.s, o)});
  }
  return t;
}

/**
 * Prefix sums over the block in thread order: thread t gets [lo, hi) with lo = Σ_{u<t} v_u and hi the next
 * thread's lo exactly (the ranges tile [0, total) with no gap or overlap despite rounding); red has ≥ 33
 * doubles.
 */
__device__ void block_ranges(double v, double* red, double* lo, double* hi, double* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  double incl = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const double t = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += t;
  }
  double excl = __shfl_up_sync(0xffffffffu, incl, 1);
  if (lane == 0) excl = 0.0;
  __syncthreads();
  if (lane == 31) red[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    const double w = lane < nw ? red[lane] : 0.0;
    double wi = w;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const double t = __shfl_up_sync(0xffffffffu, wi, o);
      if (lane >= o) wi += t;
    }
    double we = __shfl_up_sync(0xffffffffu, wi, 1);
    if (lane == 0) we = 0.0;
    __syncwarp();
    if (lane < nw) red[lane] = we;       // offset of warp `lane`
    if (lane == nw - 1) red[nw] = wi;    // total = offset past the last warp
  }
  __syncthreads();
  *lo = red[warp] + excl;
  *hi = lane == 31 ? red[warp + 1] : red[warp] + incl;
  *total = red[nw];
}

struct Shared {
  float redf[32];
  float redf2[32];
  int redi[32];
  double redd[33];
  unsigned int hist[256];
  unsigned long long hist64[256];
  unsigned int bcast[4];
  int chosen;
};

__device__ void write_result(const SampleArgs& a, int row, int id, Lse lse, const float* x) {
  if (threadIdx.x != 0) return;
  a.outIds[row] = id;
  if (a.outLogprob) a.outLogprob[row] = capped(x[id], a.softcap) - (lse.m + logf(lse.s));
}

/** Greedy pick of one row (every thread of the block calls it). */
__device__ void greedy_row(const SampleArgs& a, int row, Shared& sh) {
  const float* x = a.logits + (size_t)row * a.vocab;
  ArgMax best{-INFINITY, 0x7fffffff};
  Lse lse{-INFINITY, 0.0f};
  const auto fold = [&](float raw, int v) {
    const float xv = capped(raw, a.softcap);
    best = better(best, ArgMax{xv, v});
    if (a.outLogprob) lse = lse_add(lse, xv);
  };
  // Eight loads in flight per thread, folded in the same index order as one at a time (same result).
  constexpr int U = 8;
  const int step = blockDim.x;
  int v = threadIdx.x;
  for (; v + (U - 1) * step < a.vocab; v += U * step) {
    float xs[U];
#pragma unroll
    for (int k = 0; k < U; k++) xs[k] = x[v + k * step];
#pragma unroll
    for (int k = 0; k < U; k++) fold(xs[k], v + k * step);
  }
  for (; v < a.vocab; v += step) fold(x[v], v);
  best = block_argmax(best, sh.redf, sh.redi);
  if (a.outLogprob) lse = block_lse(lse, sh.redf, sh.redf2);
  // a NaN never wins the comparisons, but as the host's argmax (which starts from element 0) a NaN at
  // index 0 is kept: then the id is 0
  const bool nanFirst = isnan(capped(x[0], a.softcap));
  write_result(a, row, nanFirst || best.i >= a.vocab ? 0 : best.i, lse, x);
}

__global__ void __launch_bounds__(SAMPLE_THREADS) sample_greedy_kernel(SampleArgs a) {
  __shared__ Shared sh;
  greedy_row(a, blockIdx.x, sh);
}

__global__ void __launch_bounds__(SAMPLE_THREADS) sample_kernel(SampleArgs a) {
  __shared__ Shared sh;
  const int row = blockIdx.x, tid = threadIdx.x;
  const float T = a.temperature[row];
  if (!(T >= 1e-5f)) {
    greedy_row(a, row, sh);
    return;
  }
  const float* x = a.logits + (size_t)row * a.vocab;
  const int V = a.vocab;

  // Pass 1: max (and the log-sum-exp of the raw logits for the logprob).
  ArgMax best{-INFINITY, 0x7fffffff};
  Lse lse{-INFINITY, 0.0f};
  for (int v = tid; v < V; v += blockDim.x) {
    const float xv = capped(x[v], a.softcap);
    best = better(best, ArgMax{xv, v});
    lse = lse_add(lse, xv);
  }
  best = block_argmax(best, sh.redf, sh.redi);
  lse = block_lse(lse, sh.redf, sh.redf2);
  const float mx = best.v;
  if (!isfinite(mx)) {  // degenerate row: argmax, as the host sampler does
    write_result(a, row, best.i < V ? best.i : 0, lse, x);
    return;
  }
  const float invT = 1.0f / T;

  // Top-k: the exact key of the k-th largest logit.
  unsigned int keyT = 0;
  const int k = a.topK ? a.topK[row] : 0;
  if (k > 0 && k < V) {
    unsigned int prefix = 0, mask = 0, rem = (unsigned int)k;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int i = tid; i < 256; i += blockDim.x) sh.hist[i] = 0;
      __syncthreads();
      for (int v = tid; v < V; v += blockDim.x) {
        const unsigned int key = order_key(capped(x[v], a.softcap));
        if ((key & mask) == prefix) atomicAdd(&sh.hist[(key >> shift) & 255], 1u);
      }
      __syncthreads();
      if (tid == 0) {
        unsigned int cum = 0, digit = 0;
        for (int d = 255; d >= 0; d--) {
          if (cum + sh.hist[d] >= rem) {
            digit = (unsigned int)d;
            break;
          }
          cum += sh.hist[d];
        }
        sh.bcast[0] = digit;
        sh.bcast[1] = rem - cum;
      }
      __syncthreads();
      prefix |= sh.bcast[0] << shift;
      mask |= 255u << shift;
      rem = sh.bcast[1];
      __syncthreads();
    }
    keyT = prefix;
  }

  // Top-p: the weight threshold, in fixed point (2^32 = weight 1).
  unsigned int wBitsT = 0;
  const float p = a.topP ? a.topP[row] : 1.0f;
  if (p < 1.0f) {
    unsigned long long localMass = 0;
    for (int v = tid; v < V; v += blockDim.x) {
      const float xv = capped(x[v], a.softcap);
      if (order_key(xv) < keyT) continue;
      localMass += (unsigned long long)(expf((xv - mx) * invT) * 4294967296.0f);
    }
    // block sum of the fixed-point mass (exact, order-independent)
    if (tid == 0) sh.hist64[0] = 0;
    __syncthreads();
    atomicAdd(&sh.hist64[0], localMass);
    __syncthreads();
    const unsigned long long total = sh.hist64[0];
    unsigned long long need = (unsigned long long)((double)p * (double)total);
    if (need == 0) need = 1;
    unsigned int prefix = 0, mask = 0;
    unsigned long long above = 0;
    __syncthreads();
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int i = tid; i < 256; i += blockDim.x) sh.hist64[i] = 0;
      __syncthreads();
      for (int v = tid; v < V; v += blockDim.x) {
        const float xv = capped(x[v], a.softcap);
        if (order_key(xv) < keyT) continue;
        const float w = expf((xv - mx) * invT);
        const unsigned int bits = __float_as_uint(w);
        if ((bits & mask) == prefix) {
          atomicAdd(&sh.hist64[(bits >> shift) & 255], (unsigned long long)(w * 4294967296.0f));
        }
      }
      __syncthreads();
      if (tid == 0) {
        unsigned long long cum = above;
        unsigned int digit = 0;
        for (int d = 255; d >= 0; d--) {
          if (cum + sh.hist64[d] >= need) {
            digit = (unsigned int)d;
            break;
          }
          cum += sh.hist64[d];
        }
        sh.bcast[0] = digit;
        sh.hist64[0] = cum;  // read back below as the new `above`
        sh.bcast[2] = 1;
      }
      __syncthreads();
      prefix |= sh.bcast[0] << shift;
      mask |= 255u << shift;
      above = sh.hist64[0];
      __syncthreads();
    }
    wBitsT = prefix;
  }
  const float minP = a.minP ? a.minP[row] : 0.0f;

  // Draw: inverse CDF in vocabulary order over contiguous per-thread chunks.
  const int chunk = (V + blockDim.x - 1) / blockDim.x;
  const int v0 = tid * chunk, v1 = min(V, v0 + chunk);
  double local = 0.0;
  for (int v = v0; v < v1; v++) {
    const float xv = capped(x[v], a.softcap);
    if (order_key(xv) < keyT) continue;
    const float w = expf((xv - mx) * invT);
    if (__float_as_uint(w) < wBitsT || w < minP) continue;
    local += w;
  }
  double lo, hi, total;  // this thread's share [lo, hi) of the kept mass
  block_ranges(local, sh.redd, &lo, &hi, &total);
  if (tid == 0) sh.chosen = -1;
  __syncthreads();
  const double r = (double)a.uniform[row] * total;
  if (local > 0.0 && r >= lo && r < hi) {
    double c = lo;
    int last = -1;
    for (int v = v0; v < v1; v++) {
      const float xv = capped(x[v], a.softcap);
      if (order_key(xv) < keyT) continue;
      const float w = expf((xv - mx) * invT);
      if (__float_as_uint(w) < wBitsT || w < minP) continue;
      last = v;
      c += w;
      if (r < c) break;
    }
    sh.chosen = last;
  }
  __syncthreads();
  const int id = sh.chosen >= 0 ? sh.chosen : (best.i < V ? best.i : 0);
  write_result(a, row, id, lse, x);
}

}  // namespace

void launch_sample_greedy(cudaStream_t s, const SampleArgs& a) {
  if (a.rows <= 0) return;
  LOOM_LAUNCH(a.rows, SAMPLE_THREADS, 0, s, sample_greedy_kernel)(a);
  check_launch("sample_greedy_kernel");
}

void launch_sample(cudaStream_t s, const SampleArgs& a) {
  if (a.rows <= 0) return;
  LOOM_LAUNCH(a.rows, SAMPLE_THREADS, 0, s, sample_kernel)(a);
  check_launch("sample_kernel");
}

}  // namespace loom_cuda
