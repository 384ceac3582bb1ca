// Paged attention for decode tokens (one query per sequence), FlashDecoding-style: the context is split
// into partitions of `partition` tokens, one thread block per (partition, KV head, sequence) computes the
// partial softmax statistics (max m, sum l) and the unnormalized output of up to 8 query heads that share
// that KV head (GQA: each K/V vector is read once per block, not once per query head), and the last block
// of a (sequence, KV head) to finish combines the partitions (a ticket counter per pair, no second kernel):
//
//   context:  [ part 0 | part 1 | part 2 | ... ]        grid = (splits, kvHeads × headChunks, numDecode)
//   m = max_p m_p,  l = Σ_p l_p·e^(m_p − m),  out = Σ_p acc_p·e^(m_p − m) / l
//
// With one split the block writes the normalized output directly. Short partitions (32 tokens at batch 1:
// more blocks in flight, attention being latency-bound there) score each token with `lpt` lanes that split
// its head dimension. Launch configuration depends only on (numDecode, splits, partition), never on the
// step's lengths, which are read from device memory: a captured CUDA graph replays correctly for any
// lengths up to splits × partition. Partitions wholly outside [window start, position] write l = 0 and
// are skipped by the merge. f32 math throughout.
#include "device_util.cuh"
#include "kernels.h"

namespace loom_cuda {

namespace {

constexpr int NW = DECODE_THREADS / 32;
constexpr int GB = DECODE_HEADS_PER_BLOCK;

/**
 * One block's partition [start, end) (non-empty) of sequence s for query heads h0 .. h0 + gcount - 1: the
 * normalized output when splits == 1, else the partial accumulator and (max, sum) of each head.
 * Shared memory: qs[gb·hd] | sc[gb·part] | stats[2·gb] | red[NW·gb·hd] floats, then bts[part/bs + 2] ints
 * (the partition's block-table entries, read once).
 */
template <int KVT, int DPL>
__device__ __forceinline__ void decode_partition(const AttnArgs& a, float* smem, int gb, int gcount, int splits,
                                                 int part, int lpt, int s, int row, int h0, int kvh, int di,
                                                 int split, int start, int end, float* __restrict__ partAcc,
                                                 float* __restrict__ partMl) {
  const int hd = a.headDim, H = a.numHeads, n = end - start;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  float* qs = smem;
  float* sc = qs + gb * hd;
  float* stats = sc + gb * part;
  float* red = stats + 2 * gb;

  const int* bt = a.step.blockTables + (size_t)s * a.step.blockTableStride;
  const int bs = a.kv.blockSize, Hkv = a.kv.numKvHeads;
  const int b0 = start / bs;
  int* bts = reinterpret_cast<int*>(red + NW * gb * hd);
  for (int i = tid; i <= (end - 1) / bs - b0; i += DECODE_THREADS) bts[i] = bt[b0 + i];
  for (int idx = tid; idx < gcount * hd; idx += DECODE_THREADS) {
    qs[idx] = a.qkv[(size_t)row * a.rowStride + (size_t)(h0 + idx / hd) * hd + idx % hd];
  }
  __syncthreads();

  // Phase 1: scores. `lpt` lanes per token split its head dimension (partials summed by shuffles), so a
  // pass scores DECODE_THREADS / lpt tokens; each lane issues two 8-element loads before using either
  // (a warp per token with lanes across the whole head dimension made each token wait on the one before).
  const bool vec8 = (hd & 7) == 0;  // lpt > 1 only then (launch_decode_t)
  const int tpp = DECODE_THREADS / lpt, sub = tid % lpt;
  for (int jb = start; jb < end; jb += tpp) {  // the same trip count for every thread: shuffles below
    const int j = jb + tid / lpt;
    float dot[GB];
#pragma unroll
    for (int g = 0; g < GB; g++) dot[g] = 0.0f;
    if (j < end) {
      const int slot = bts[j / bs - b0] * bs + j % bs;
      const size_t vec = (size_t)slot * Hkv + kvh;
      const size_t off = vec * hd;
      if (vec8) {
        const int stride = 8 * lpt;
        for (int d0 = 8 * sub; d0 < hd; d0 += 2 * stride) {
          float k[2][8];  // two loads in flight (four cost registers: 80 instead of 64, 6 blocks an SM, not 8)
#pragma unroll
          for (int u = 0; u < 2; u++)
            if (d0 + u * stride < hd) kv_load8<KVT>(a.kv.k, a.kv.kScale, off, vec, d0 + u * stride, k[u]);
#pragma unroll
          for (int u = 0; u < 2; u++) {
            const int d = d0 + u * stride;
            if (d < hd) {
#pragma unroll
              for (int g = 0; g < GB; g++) {
                if (g < gcount) {
#pragma unroll
                  for (int i = 0; i < 8; i++) dot[g] += qs[g * hd + d + i] * k[u][i];
                }
              }
            }
          }
        }
      } else {
        for (int d = 0; d < hd; d++) {
          const float k = KvLoad<KVT>::at(a.kv.k, a.kv.kScale, off, vec, d);
#pragma unroll
          for (int g = 0; g < GB; g++)
            if (g < gcount) dot[g] += qs[g * hd + d] * k;
        }
      }
    }
    for (int o = 1; o < lpt; o <<= 1) {
#pragma unroll
      for (int g = 0; g < GB; g++)
        if (g < gcount) dot[g] += __shfl_xor_sync(0xffffffffu, dot[g], o);
    }
    if (j < end && sub == 0) {
#pragma unroll
      for (int g = 0; g < GB; g++) {
        if (g < gcount) {
          float v = dot[g] * a.scale;
          if (a.softcap > 0.0f) v = a.softcap * tanhf(v / a.softcap);
          sc[g * part + (j - start)] = v;
        }
      }
    }
  }
  __syncthreads();

  // Phase 2: max and sum per head; scores become weights e^(s − m).
  for (int g = warp; g < gcount; g += NW) {
    float m = -INFINITY;
    for (int i = lane; i < n; i += 32) m = fmaxf(m, sc[g * part + i]);
    m = warp_max(m);
    float l = 0.0f;
    for (int i = lane; i < n; i += 32) {
      const float p = expf(sc[g * part + i] - m);
      sc[g * part + i] = p;
      l += p;
    }
    l = warp_sum(l);
    if (lane == 0) {
      stats[2 * g] = m;
      stats[2 * g + 1] = l;
    }
  }
  __syncthreads();

  // Phase 3: weighted sum of V; a warp takes CH consecutive tokens at a time with lanes across the head
  // dimension, all CH rows loaded before any is used (one round trip per CH tokens).
  constexpr int CH = DPL <= 2 ? 8 : 4;
  float acc[GB][DPL];
#pragma unroll
  for (int g = 0; g < GB; g++)
#pragma unroll
    for (int i = 0; i < DPL; i++) acc[g][i] = 0.0f;
  for (int j0 = start + warp * CH; j0 < end; j0 += NW * CH) {
    float v[CH][DPL];
#pragma unroll
    for (int c = 0; c < CH; c++) {
      const int j = j0 + c;
      const int slot = j < end ? bts[j / bs - b0] * bs + j % bs : 0;
      const size_t vec = (size_t)slot * Hkv + kvh;
      const size_t off = vec * hd;
#pragma unroll
      for (int i = 0; i < DPL; i++) {
        const int d = lane + 32 * i;
        v[c][i] = j < end && d < hd ? KvLoad<KVT>::at(a.kv.v, a.kv.vScale, off, vec, d) : 0.0f;
      }
    }
#pragma unroll
    for (int c = 0; c < CH; c++) {
      if (j0 + c < end) {
#pragma unroll
        for (int g = 0; g < GB; g++) {
          if (g < gcount) {
            const float p = sc[g * part + (j0 + c - start)];
#pragma unroll
            for (int i = 0; i < DPL; i++) acc[g][i] += p * v[c][i];
          }
        }
      }
    }
  }
#pragma unroll
  for (int g = 0; g < GB; g++) {
    if (g < gcount) {
#pragma unroll
      for (int i = 0; i < DPL; i++) {
        const int d = lane + 32 * i;
        if (d < hd) red[((size_t)warp * gb + g) * hd + d] = acc[g][i];
      }
    }
  }
  __syncthreads();
  for (int idx = tid; idx < gcount * hd; idx += DECODE_THREADS) {
    const int g = idx / hd, d = idx % hd;
    float o = 0.0f;
#pragma unroll
    for (int w = 0; w < NW; w++) o += red[((size_t)w * gb + g) * hd + d];
    const int h = h0 + g;
    if (splits == 1) {
      a.out[(size_t)row * H * hd + (size_t)h * hd + d] = o / stats[2 * g + 1];
    } else {
      const size_t p = ((size_t)di * H + h) * splits + split;
      partAcc[p * hd + d] = o;
      if (d == 0) {
        partMl[2 * p] = stats[2 * g];
        partMl[2 * p + 1] = stats[2 * g + 1];
      }
    }
  }
}

/**
 * grid (splits, kvHeads × headChunks, numDecode); gb = min(group, 8) is the head capacity of a block, the same
 * for every block of a launch. tickets: one zeroed counter per (sequence, head chunk), left zeroed.
 */
/**
 * Blocks an SM must hold: as many as the previous version of this kernel (64 registers at headDim ≤ 64, 72 at
 * ≤ 128), whose batch-128 launch of 1024 blocks then fits the 132 SMs in one wave. Left to itself, ptxas
 * spent 80 registers (6 blocks an SM, two waves: batch 128 decoded 19% slower on an H200).
 */
constexpr int decode_min_blocks(int dpl) { return dpl <= 2 ? 8 : dpl == 4 ? 7 : 4; }

template <int KVT, int DPL>
__global__ void __launch_bounds__(DECODE_THREADS, decode_min_blocks(DPL))
    attn_decode_kernel(AttnArgs a, int gb, int splits, int part, int headChunks, int lpt, float* __restrict__ partAcc,
                       float* __restrict__ partMl, unsigned* __restrict__ tickets) {
  LOOM_DYNAMIC_SMEM(float, smem);
  const int hd = a.headDim, H = a.numHeads;
  const int split = blockIdx.x;
  const int kvh = blockIdx.y / headChunks, chunk = blockIdx.y % headChunks;
  const int di = blockIdx.z;
  const int group = H / a.numKvHeads;
  const int h0 = kvh * group + chunk * GB;
  const int gcount = min(gb, group - chunk * GB);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  const int s = a.step.decodeSeqs[di];
  const int row = a.step.queryStart[s];
  const int seqLen = a.step.seqLens[s];
  const int pos = seqLen - 1;
  const int first = a.window > 0 ? max(0, pos - a.window + 1) : 0;
  const int start = max(first, split * part);
  const int end = min(pos + 1, (split + 1) * part);
  if (end > start) {
    decode_partition<KVT, DPL>(a, smem, gb, gcount, splits, part, lpt, s, row, h0, kvh, di, split, start, end,
                               partAcc, partMl);
  } else if (splits > 1) {
    if (tid < gcount) {
      float* ml = partMl + (((size_t)di * H + h0 + tid) * splits + split) * 2;
      ml[0] = -INFINITY;
      ml[1] = 0.0f;
    }
  } else {
    for (int idx = tid; idx < gcount * hd; idx += DECODE_THREADS) {
      a.out[(size_t)row * H * hd + (size_t)(h0 + idx / hd) * hd + idx % hd] = 0.0f;
    }
  }
  if (splits == 1) return;

  // The last of the `splits` blocks of this (sequence, head chunk) to get here merges them all: partials are
  // published (fence) before the ticket is taken, and read past L1 (ldcg) by the merging block.
  __shared__ unsigned ticket;
  __threadfence();
  __syncthreads();
  unsigned* counter = tickets + (size_t)di * gridDim.y + blockIdx.y;
  if (tid == 0) ticket = atomicAdd(counter, 1u);
  __syncthreads();
  if (ticket != (unsigned)splits - 1) return;
  __threadfence();
  float* stats = smem;  // [gcount][2]: the merged max and sum of each head
  for (int g = warp; g < gcount; g += NW) {
    const float* ml = partMl + ((size_t)di * H + h0 + g) * splits * 2;
    float m = -INFINITY;
    for (int sp = lane; sp < splits; sp += 32)
      if (__ldcg(ml + 2 * sp + 1) > 0.0f) m = fmaxf(m, __ldcg(ml + 2 * sp));
    m = warp_max(m);
    float l = 0.0f;
    for (int sp = lane; sp < splits; sp += 32) {
      const float ls = __ldcg(ml + 2 * sp + 1);
      if (ls > 0.0f) l += ls * expf(__ldcg(ml + 2 * sp) - m);
    }
    l = warp_sum(l);
    if (lane == 0) {
      stats[2 * g] = m;
      stats[2 * g + 1] = l;
    }
  }
  __syncthreads();
  for (int idx = tid; idx < gcount * hd; idx += DECODE_THREADS) {
    const int g = idx / hd, d = idx % hd, h = h0 + g;
    const size_t p0 = ((size_t)di * H + h) * splits;
    const float M = stats[2 * g], L = stats[2 * g + 1];
    float acc = 0.0f;
    for (int sp = 0; sp < splits; sp++) {
      const float ls = __ldcg(partMl + 2 * (p0 + sp) + 1);
      if (ls > 0.0f) acc += __ldcg(partAcc + (p0 + sp) * hd + d) * expf(__ldcg(partMl + 2 * (p0 + sp)) - M);
    }
    a.out[(size_t)row * H * hd + (size_t)h * hd + d] = L > 0.0f ? acc / L : 0.0f;
  }
  if (tid == 0) *counter = 0;  // ready for the next launch (or graph replay)
}

/** Lanes per token of phase 1: the most (≤ 8) that keep a pass within the partition and the loads 8-wide. */
inline int lanes_per_token(int part, int hd) {
  int lpt = 1;
  while (lpt < 8 && 2 * lpt * part <= DECODE_THREADS && hd % (16 * lpt) == 0) lpt *= 2;
  return lpt;
}

template <int KVT, int DPL>
void launch_decode_t(cudaStream_t s, const AttnArgs& a, int numDecode, int splits, int part, float* partAcc,
                     float* partMl, unsigned* tickets) {
  const int group = a.numHeads / a.numKvHeads;
  const int gb = group < GB ? group : GB;
  const int headChunks = (int)ceil_div(group, GB);
  const size_t smem = sizeof(float) * ((size_t)gb * a.headDim + (size_t)gb * part + 2 * gb +
                                       (size_t)NW * gb * a.headDim) +
                      sizeof(int) * ((size_t)part / a.kv.blockSize + 2);
  const dim3 grid(splits, a.numKvHeads * headChunks, numDecode);
  LOOM_LAUNCH(grid, DECODE_THREADS, smem, s, attn_decode_kernel<KVT, DPL>)(
      a, gb, splits, part, headChunks, lanes_per_token(part, a.headDim), partAcc, partMl, tickets);
  check_launch("attn_decode_kernel");
}

template <int KVT>
void launch_decode_kv(cudaStream_t s, const AttnArgs& a, int numDecode, int splits, int part, float* partAcc,
                      float* partMl, unsigned* tickets) {
  const int hd = a.headDim;
  if (hd <= 32) launch_decode_t<KVT, 1>(s, a, numDecode, splits, part, partAcc, partMl, tickets);
  else if (hd <= 64) launch_decode_t<KVT, 2>(s, a, numDecode, splits, part, partAcc, partMl, tickets);
  else if (hd <= 128) launch_decode_t<KVT, 4>(s, a, numDecode, splits, part, partAcc, partMl, tickets);
  else launch_decode_t<KVT, 8>(s, a, numDecode, splits, part, partAcc, partMl, tickets);
}

template <int KVT, int DPL>
void raise_smem_t(int bytes) {
  LOOM_CHECK(cudaFuncSetAttribute(attn_decode_kernel<KVT, DPL>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}
template <int KVT>
void raise_smem_kv(int bytes) {
  raise_smem_t<KVT, 1>(bytes);
  raise_smem_t<KVT, 2>(bytes);
  raise_smem_t<KVT, 4>(bytes);
  raise_smem_t<KVT, 8>(bytes);
}

}  // namespace

void attention_decode_init(int maxSharedBytes) {
  raise_smem_kv<KV_F32>(maxSharedBytes);
  raise_smem_kv<KV_BF16>(maxSharedBytes);
  raise_smem_kv<KV_F16>(maxSharedBytes);
  raise_smem_kv<KV_INT8>(maxSharedBytes);
}

void launch_attention_decode(cudaStream_t s, const AttnArgs& a, int numDecode, int splits, int partition,
                             float* partAcc, float* partMl, unsigned* tickets) {
  if (numDecode <= 0) return;
  if (a.headDim > MAX_HEAD_DIM) throw CudaError("attention: headDim > 256");
  if (splits < 1 || partition < 1) throw CudaError("attention: bad split plan");
  switch (a.kv.dtype) {
    case KV_F32: launch_decode_kv<KV_F32>(s, a, numDecode, splits, partition, partAcc, partMl, tickets); break;
    case KV_BF16: launch_decode_kv<KV_BF16>(s, a, numDecode, splits, partition, partAcc, partMl, tickets); break;
    case KV_F16: launch_decode_kv<KV_F16>(s, a, numDecode, splits, partition, partAcc, partMl, tickets); break;
    default: launch_decode_kv<KV_INT8>(s, a, numDecode, splits, partition, partAcc, partMl, tickets);
  }
}

}  // namespace loom_cuda
