// Flash-style prefill attention over block tables: one thread block per (tile of 16 query rows of one
// sequence, query head). K and V stream through shared memory in tiles of 32 tokens; each warp owns 4
// query rows and keeps their running max m, sum l and output accumulator (online softmax), so the score
// matrix never leaves the SM. SIMT f32 (no tensor cores): scores and the P·V product are f32 FMAs, the
// same arithmetic as the reference up to summation order.
//
//   Qs[16][hd]            the tile's queries (f32)
//   KVs[32][hd+1]         K tile, then V tile (the +1 keeps "lane = key" reads free of bank conflicts)
//   Ps[16][32]            the tile's probabilities, per warp row
//
//   query row r of the tile is token q0 + r of the sequence's chunk, at position ctx0 + q0 + r where
//   ctx0 = seqLen − qLen; it sees keys j with max(0, pos − window + 1) ≤ j ≤ pos.
#include "device_util.cuh"
#include "kernels.h"

namespace loom_cuda {

void attention_decode_init(int maxSharedBytes);

namespace {

constexpr int TQ = PREFILL_TILE_Q;  // 16
constexpr int TK = 32;
constexpr int ROWS_PER_WARP = 4;    // 4 warps × 4 rows = 16

size_t prefill_smem_bytes(int hd) {
  return sizeof(float) * ((size_t)TQ * hd + (size_t)TK * (hd + 1) + (size_t)TQ * TK) + sizeof(int) * TK;
}

template <int KVT, int DPL>
__global__ void __launch_bounds__(128) attn_prefill_kernel(AttnArgs a) {
  LOOM_DYNAMIC_SMEM(float, smem);
  const int hd = a.headDim, ldk = hd + 1, H = a.numHeads;
  float* Qs = smem;
  float* KVs = Qs + TQ * hd;
  float* Ps = KVs + TK * ldk;
  int* slots = reinterpret_cast<int*>(Ps + TQ * TK);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int h = blockIdx.y;
  const int s = a.step.tileSeq[blockIdx.x], q0 = a.step.tileQ0[blockIdx.x];
  const int qBeg = a.step.queryStart[s];
  const int qLen = a.step.queryStart[s + 1] - qBeg;
  const int seqLen = a.step.seqLens[s];
  const int kvh = h / (H / a.numKvHeads);
  const int Hkv = a.kv.numKvHeads, bs = a.kv.blockSize;
  const int rowsInTile = min(TQ, qLen - q0);
  if (rowsInTile <= 0) return;
  const int ctx0 = seqLen - qLen;

  for (int idx = tid; idx < TQ * hd; idx += blockDim.x) {
    const int r = idx / hd, d = idx % hd;
    Qs[idx] = r < rowsInTile ? a.qkv[(size_t)(qBeg + q0 + r) * a.rowStride + (size_t)h * hd + d] : 0.0f;
  }

  const int posLo = ctx0 + q0, posHi = ctx0 + q0 + rowsInTile - 1;
  const int kvStart = a.window > 0 ? max(0, posLo - a.window + 1) : 0;
  const int kvEnd = posHi + 1;
  const int* bt = a.step.blockTables + (size_t)s * a.step.blockTableStride;

  float m[ROWS_PER_WARP], l[ROWS_PER_WARP], acc[ROWS_PER_WARP][DPL];
  int pos[ROWS_PER_WARP];
  bool live[ROWS_PER_WARP];
#pragma unroll
  for (int i = 0; i < ROWS_PER_WARP; i++) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
    pos[i] = ctx0 + q0 + warp * ROWS_PER_WARP + i;
    live[i] = warp * ROWS_PER_WARP + i < rowsInTile;
#pragma unroll
    for (int dd = 0; dd < DPL; dd++) acc[i][dd] = 0.0f;
  }

  for (int j0 = kvStart; j0 < kvEnd; j0 += TK) {
    __syncthreads();  // the previous V tile and slots are no longer read
    if (tid < TK) {
      const int j = j0 + tid;
      slots[tid] = j < kvEnd ? bt[j / bs] * bs + j % bs : -1;
    }
    __syncthreads();
    for (int idx = tid; idx < TK * hd; idx += blockDim.x) {
      const int k = idx / hd, d = idx % hd;
      const int slot = slots[k];
      const size_t vec = (size_t)(slot < 0 ? 0 : slot) * Hkv + kvh;
      KVs[k * ldk + d] = slot >= 0 ? KvLoad<KVT>::at(a.kv.k, a.kv.kScale, vec * hd, vec, d) : 0.0f;
    }
    __syncthreads();

    float sc[ROWS_PER_WARP];
#pragma unroll
    for (int i = 0; i < ROWS_PER_WARP; i++) sc[i] = 0.0f;
    const float* krow = KVs + lane * ldk;
    const float* qrow = Qs + warp * ROWS_PER_WARP * hd;
    for (int d = 0; d < hd; d++) {
      const float kv = krow[d];
#pragma unroll
      for (int i = 0; i < ROWS_PER_WARP; i++) sc[i] += qrow[i * hd + d] * kv;
    }
    const int j = j0 + lane;
#pragma unroll
    for (int i = 0; i < ROWS_PER_WARP; i++) {
      const bool ok = live[i] && j < kvEnd && j <= pos[i] && (a.window <= 0 || j > pos[i] - a.window);
      float v = sc[i] * a.scale;
      if (a.softcap > 0.0f) v = a.softcap * tanhf(v / a.softcap);
      v = ok ? v : -INFINITY;
      const float mn = fmaxf(m[i], warp_max(v));
      const float p = mn == -INFINITY ? 0.0f : expf(v - mn);
      const float alpha = mn == -INFINITY ? 1.0f : expf(m[i] - mn);
      l[i] = l[i] * alpha + warp_sum(p);
      m[i] = mn;
#pragma unroll
      for (int dd = 0; dd < DPL; dd++) acc[i][dd] *= alpha;
      Ps[(warp * ROWS_PER_WARP + i) * TK + lane] = p;
    }
    __syncthreads();  // K tile fully read
    for (int idx = tid; idx < TK * hd; idx += blockDim.x) {
      const int k = idx / hd, d = idx % hd;
      const int slot = slots[k];
      const size_t vec = (size_t)(slot < 0 ? 0 : slot) * Hkv + kvh;
      KVs[k * ldk + d] = slot >= 0 ? KvLoad<KVT>::at(a.kv.v, a.kv.vScale, vec * hd, vec, d) : 0.0f;
    }
    __syncthreads();
    const int kmax = min(TK, kvEnd - j0);
    for (int k = 0; k < kmax; k++) {
      float v[DPL];
#pragma unroll
      for (int dd = 0; dd < DPL; dd++) {
        const int d = lane + 32 * dd;
        v[dd] = d < hd ? KVs[k * ldk + d] : 0.0f;
      }
#pragma unroll
      for (int i = 0; i < ROWS_PER_WARP; i++) {
        const float p = Ps[(warp * ROWS_PER_WARP + i) * TK + k];
#pragma unroll
        for (int dd = 0; dd < DPL; dd++) acc[i][dd] += p * v[dd];
      }
    }
  }

#pragma unroll
  for (int i = 0; i < ROWS_PER_WARP; i++) {
    if (!live[i]) continue;
    const int r = warp * ROWS_PER_WARP + i;
    float* o = a.out + (size_t)(qBeg + q0 + r) * H * hd + (size_t)h * hd;
#pragma unroll
    for (int dd = 0; dd < DPL; dd++) {
      const int d = lane + 32 * dd;
      if (d < hd) o[d] = l[i] > 0.0f ? acc[i][dd] / l[i] : 0.0f;
    }
  }
}

template <int KVT, int DPL>
void launch_t(cudaStream_t s, const AttnArgs& a, int numTiles) {
  const dim3 grid(numTiles, a.numHeads);
  LOOM_LAUNCH(grid, 128, prefill_smem_bytes(a.headDim), s, attn_prefill_kernel<KVT, DPL>)(a);
  check_launch("attn_prefill_kernel");
}

template <int KVT>
void launch_kv(cudaStream_t s, const AttnArgs& a, int numTiles) {
  const int hd = a.headDim;
  if (hd <= 32) launch_t<KVT, 1>(s, a, numTiles);
  else if (hd <= 64) launch_t<KVT, 2>(s, a, numTiles);
  else if (hd <= 128) launch_t<KVT, 4>(s, a, numTiles);
  else launch_t<KVT, 8>(s, a, numTiles);
}

template <int KVT>
void raise_kv(int bytes) {
  LOOM_CHECK(cudaFuncSetAttribute(attn_prefill_kernel<KVT, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  LOOM_CHECK(cudaFuncSetAttribute(attn_prefill_kernel<KVT, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  LOOM_CHECK(cudaFuncSetAttribute(attn_prefill_kernel<KVT, 4>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  LOOM_CHECK(cudaFuncSetAttribute(attn_prefill_kernel<KVT, 8>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

}  // namespace

void attention_init(int maxSharedBytes) {
  const int need = (int)prefill_smem_bytes(MAX_HEAD_DIM);
  const int bytes = need < maxSharedBytes ? need : maxSharedBytes;
  raise_kv<KV_F32>(bytes);
  raise_kv<KV_BF16>(bytes);
  raise_kv<KV_F16>(bytes);
  raise_kv<KV_INT8>(bytes);
  attention_decode_init(maxSharedBytes < 96 * 1024 ? maxSharedBytes : 96 * 1024);
}

void launch_attention_prefill(cudaStream_t s, const AttnArgs& a, int numTiles) {
  if (numTiles <= 0) return;
  if (a.headDim > MAX_HEAD_DIM) throw CudaError("attention: headDim > 256");
  switch (a.kv.dtype) {
    case KV_F32: launch_kv<KV_F32>(s, a, numTiles); break;
    case KV_BF16: launch_kv<KV_BF16>(s, a, numTiles); break;
    case KV_F16: launch_kv<KV_F16>(s, a, numTiles); break;
    default: launch_kv<KV_INT8>(s, a, numTiles);
  }
}

}  // namespace loom_cuda
