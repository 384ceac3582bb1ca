// Paged KV storage: pool[block][slot][kvHead][headDim] as f32, bf16, f16 or int8 (+ one f32 scale per
// (slot, head), quantized like an int8 weight group), writes of the step's K/V rows and block copies.
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "context.h"

namespace loom {

KvLayerT* make_kv(int numBlocks, int blockSize, int numKvHeads, int headDim, int dtype) {
  auto* kv = new KvLayerT();
  kv->numBlocks = numBlocks;
  kv->blockSize = blockSize;
  kv->numKvHeads = numKvHeads;
  kv->headDim = headDim;
  kv->dtype = dtype;
  kv->elems = (size_t)numBlocks * blockSize * numKvHeads * headDim;
  size_t bytes = kv->elems * kv_elem_bytes(dtype);
  kv->k = aligned_zalloc(bytes);
  kv->v = aligned_zalloc(bytes);
  bool ok = kv->k && kv->v;
  if (dtype == KV_INT8) {
    size_t rows = (size_t)numBlocks * blockSize * numKvHeads;
    kv->kScale = (float*)aligned_zalloc(rows * 4);
    kv->vScale = (float*)aligned_zalloc(rows * 4);
    ok = ok && kv->kScale && kv->vScale;
  }
  if (!ok) {
    free_kv(kv);
    throw std::bad_alloc();
  }
  return kv;
}

void free_kv(KvLayerT* kv) {
  aligned_free(kv->k);
  aligned_free(kv->v);
  aligned_free(kv->kScale);
  aligned_free(kv->vScale);
  delete kv;
}

void write_kv(Context& c, KvLayerT& kv, const float* qkv, int rowStride, int kOffset, int vOffset) {
  const int n = c.meta.numTokens;
  const int32_t* slots = c.meta.slotMapping.data();
  const long maxSlot = (long)kv.numBlocks * kv.blockSize;
  for (int i = 0; i < n; i++)
    if (slots[i] >= maxSlot)
      throw std::range_error("writeKv: slot " + std::to_string(slots[i]) + " beyond the pool's " +
                             std::to_string(maxSlot) + " slots");
  const int H = kv.numKvHeads, D = kv.headDim;
  const size_t rowBytes = (size_t)D * kv_elem_bytes(kv.dtype);
  auto job = [&](long b, long e, int) {
    for (long i = b; i < e; i++) {
      if (slots[i] < 0) continue;
      const float* row = qkv + (size_t)i * rowStride;
      for (int h = 0; h < H; h++) {
        size_t idx = (size_t)slots[i] * H + h;
        const float ks = c.K->storeKvRow(kv.dtype, row + kOffset + (size_t)h * D, D, (char*)kv.k + idx * rowBytes);
        const float vs = c.K->storeKvRow(kv.dtype, row + vOffset + (size_t)h * D, D, (char*)kv.v + idx * rowBytes);
        if (kv.kScale) {
          kv.kScale[idx] = ks;
          kv.vScale[idx] = vs;
        }
      }
    }
  };
  double work = (double)n * H * D * (kv.dtype == KV_F32 ? 1 : 8);
  c.pool->parallelFor(n, 1, threads_for(c, work), job);
}

void copy_blocks(KvLayerT& kv, const int32_t* src, const int32_t* dst, int n) {
  const size_t rows = (size_t)kv.blockSize * kv.numKvHeads;
  const size_t bytes = rows * kv.headDim * kv_elem_bytes(kv.dtype);
  for (int i = 0; i < n; i++) {
    if (src[i] < 0 || src[i] >= kv.numBlocks || dst[i] < 0 || dst[i] >= kv.numBlocks)
      throw std::range_error("copyBlocks: block id out of range");
  }
  for (int i = 0; i < n; i++) {
    std::memmove((char*)kv.k + (size_t)dst[i] * bytes, (char*)kv.k + (size_t)src[i] * bytes, bytes);
    std::memmove((char*)kv.v + (size_t)dst[i] * bytes, (char*)kv.v + (size_t)src[i] * bytes, bytes);
    if (kv.kScale) {
      std::memmove(kv.kScale + (size_t)dst[i] * rows, kv.kScale + (size_t)src[i] * rows, rows * 4);
      std::memmove(kv.vScale + (size_t)dst[i] * rows, kv.vScale + (size_t)src[i] * rows, rows * 4);
    }
  }
}

}  // namespace loom
