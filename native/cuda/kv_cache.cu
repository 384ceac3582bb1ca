// The paged KV cache: writing the step's K/V vectors into their slots (converting to the cache dtype; int8
// quantized per (token, kv head) exactly as src/formats/quant.ts quantizeInt8Group does), and block copies
// for copy-on-write.
//
//   pool[block][slotInBlock][kvHead][headDim]    slot = block * blockSize + slotInBlock
#include "device_util.cuh"
#include "kernels.h"

namespace loom_cuda {

namespace {

__device__ __forceinline__ double round_half_up(double v) {
  const double f = floor(v);
  return v - f >= 0.5 ? f + 1.0 : f;
}

/** One warp per (token, kv head, K|V). */
template <int KVT>
__global__ void write_kv_kernel(KvView kv, const float* __restrict__ qkv, int rowStride, int kOffset, int vOffset,
                                const int* __restrict__ slotMapping, int numTokens) {
  const long wid = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  const int H = kv.numKvHeads, hd = kv.headDim;
  if (wid >= (long)numTokens * H * 2) return;
  const int which = (int)(wid & 1);
  const long th = wid >> 1;
  const int t = (int)(th / H), h = (int)(th % H);
  const int slot = slotMapping[t];
  if (slot < 0 || slot >= kv.numBlocks * kv.blockSize) return;
  const float* src = qkv + (size_t)t * rowStride + (which ? vOffset : kOffset) + (size_t)h * hd;
  const size_t vec = (size_t)slot * H + h;
  const size_t off = vec * hd;
  void* pool = which ? kv.v : kv.k;
  if (KVT == KV_F32) {
    for (int i = lane; i < hd; i += 32) ((float*)pool)[off + i] = src[i];
  } else if (KVT == KV_BF16) {
    for (int i = lane; i < hd; i += 32) ((__nv_bfloat16*)pool)[off + i] = __float2bfloat16_rn(src[i]);
  } else if (KVT == KV_F16) {
    for (int i = lane; i < hd; i += 32) ((__half*)pool)[off + i] = __float2half_rn(src[i]);
  } else {
    float amax = 0.0f;
    for (int i = lane; i < hd; i += 32) amax = fmaxf(amax, fabsf(src[i]));
    amax = warp_max(amax);
    const float d = (float)((double)amax / 127.0);
    for (int i = lane; i < hd; i += 32) {
      double q = d == 0.0f ? 0.0 : round_half_up((double)src[i] / (double)d);
      q = q < -127.0 ? -127.0 : q > 127.0 ? 127.0 : q;
      ((signed char*)pool)[off + i] = (signed char)q;
    }
    if (lane == 0) (which ? kv.vScale : kv.kScale)[vec] = d;
  }
}

/** blockIdx.x = pair, blockIdx.y = 0: K, 1: V, 2: K scales, 3: V scales. */
__global__ void copy_blocks_kernel(KvView kv, const int* __restrict__ src, const int* __restrict__ dst,
                                   size_t blockBytes, size_t scaleBytes) {
  const int which = blockIdx.y;
  const size_t bytes = which < 2 ? blockBytes : scaleBytes;
  if (bytes == 0) return;
  unsigned char* base = (unsigned char*)(which == 0 ? kv.k : which == 1 ? kv.v : which == 2 ? (void*)kv.kScale
                                                                                             : (void*)kv.vScale);
  const int s = src[blockIdx.x], d = dst[blockIdx.x];
  if (s < 0 || d < 0 || s >= kv.numBlocks || d >= kv.numBlocks) return;
  const unsigned char* from = base + (size_t)s * bytes;
  unsigned char* to = base + (size_t)d * bytes;
  if (bytes % 16 == 0) {
    for (size_t i = threadIdx.x; i < bytes / 16; i += blockDim.x) ((uint4*)to)[i] = ((const uint4*)from)[i];
  } else {
    for (size_t i = threadIdx.x; i < bytes; i += blockDim.x) to[i] = from[i];
  }
}

size_t kv_elem_bytes(int dtype) { return dtype == KV_F32 ? 4 : dtype == KV_INT8 ? 1 : 2; }

}  // namespace

void launch_write_kv(cudaStream_t s, const KvView& kv, const float* qkv, int rowStride, int kOffset, int vOffset,
                     const int* slotMapping, int numTokens) {
  const long warps = (long)numTokens * kv.numKvHeads * 2;
  if (warps <= 0) return;
  const unsigned blocks = (unsigned)ceil_div(warps, 8);
  switch (kv.dtype) {
    case KV_F32:
      LOOM_LAUNCH(blocks, 256, 0, s, write_kv_kernel<KV_F32>)(kv, qkv, rowStride, kOffset, vOffset, slotMapping, numTokens);
      break;
    case KV_BF16:
      LOOM_LAUNCH(blocks, 256, 0, s, write_kv_kernel<KV_BF16>)(kv, qkv, rowStride, kOffset, vOffset, slotMapping, numTokens);
      break;
    case KV_F16:
      LOOM_LAUNCH(blocks, 256, 0, s, write_kv_kernel<KV_F16>)(kv, qkv, rowStride, kOffset, vOffset, slotMapping, numTokens);
      break;
    default:
      LOOM_LAUNCH(blocks, 256, 0, s, write_kv_kernel<KV_INT8>)(kv, qkv, rowStride, kOffset, vOffset, slotMapping, numTokens);
  }
  check_launch("write_kv_kernel");
}

void launch_copy_blocks(cudaStream_t s, const KvView& kv, const int* src, const int* dst, int n) {
  if (n <= 0) return;
  const size_t vecs = (size_t)kv.blockSize * kv.numKvHeads;
  const size_t blockBytes = vecs * kv.headDim * kv_elem_bytes(kv.dtype);
  const size_t scaleBytes = kv.dtype == KV_INT8 ? vecs * 4 : 0;
  LOOM_LAUNCH(dim3(n, 4), 256, 0, s, copy_blocks_kernel)(kv, src, dst, blockBytes, scaleBytes);
  check_launch("copy_blocks_kernel");
}

}  // namespace loom_cuda
