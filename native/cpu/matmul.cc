// y[rows, N] = x[rows, K] · Wᵀ (+ bias): the GEMV/GEMM driver (threading, padding, packing); the
// arithmetic is in the ISA kernels (kernels_impl.inc and its parts).
//
//  rows ≤ gemvMaxRows (4; 8 on AVX-512)  GEMV: threads split the output columns; each streams its
//            slice of W exactly once with the weights dequantized in registers (memory-bound: the goal
//            is DRAM bandwidth; the slice is read as interleaved sequential streams, see gemv.inc).
//  more rows  GEMM: activations packed k-major into tiles of MR rows (phase 1, parallel over tiles); then
//            threads split W into panels of NR rows, dequantize a panel to f32 once (f32 weights are copied
//            into one too) and run every row tile against it from L1/L2 (phase 2). Rows are processed in
//            chunks whose packed activations stay within ~1 MB (L2). With AMX: tile GEMM (below); with
//            AVX512-BF16 (and no AMX), bf16 weights are read in place by vdpbf16ps (bf16_dot.inc).
//  int8 and int4 weights on AVX512-VNNI CPUs without AMX are stored in 16-row panels, and one kernel
//  (quant_panels.inc) does their GEMV and GEMM with the same arithmetic, so a row's output does not depend on
//  the batch.
//  Arithmetic is f32 with f32 activations, except int8 on AVX-512 without VNNI (GEMV: int16 activations), the
//  int8/int4 panels (int8 activation codes: two planes for int8, ~int16 precision; one for int4), the
//  AVX512-BF16 GEMM (activations as two bf16 terms, ~2⁻¹⁷ of each) and the AMX tiles (activations split into
//  bf16 terms; int8/int4 weights and activations rounded to bf16): see the accuracy notes in cpu-backend.ts.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "context.h"

namespace loom {

namespace {
constexpr size_t kPackedBytes = 1 << 20;
/** GEMV work split: rows in multiples of 16, four chunks per thread (ThreadPool::parallelFor). */
constexpr long kGemvAlign = 16;
constexpr int kGemvSplit = 4;
/** Bytes of the next matrix a helper prefetches per thread's share (L2 holds 2 MB on current x86 cores). */
constexpr size_t kIdlePrefetchBytes = 256 << 10;

/** What a helper prefetches of the next GEMV's matrix (copied into the job: IdleWork::args). */
struct GemvPrefetch {
  const char* data;
  long N;
  size_t rowBytes;  // a quantized row's scales included (MatW)
  int parts, streams;
  std::atomic<uint64_t>* runs;
};
static_assert(sizeof(GemvPrefetch) <= sizeof(IdleWork::args), "IdleWork::args too small");

/** Prefetches (to L2) the rows thread `part` reads first in the next GEMV, in the order it reads them. */
bool prefetch_share(const GemvPrefetch& p, int part, const StopToken& stop) {
  long b, e;
  ThreadPool::firstChunk(p.N, kGemvAlign, p.parts, kGemvSplit, part, &b, &e);
  const long S = (e - b) / p.streams;
  size_t bytes = 0;
  for (long j = 0; j < S && bytes < kIdlePrefetchBytes; j++) {
    if (stop()) return false;
    for (int s = 0; s < p.streams; s++) {
      const size_t row = (size_t)(b + j + s * S);
      const char* r = p.data + row * p.rowBytes;
      for (size_t o = 0; o < p.rowBytes; o += 64) __builtin_prefetch(r + o, 0, 2);
      bytes += p.rowBytes;
    }
  }
  return true;
}

/** IdleWork: a helper's own share of the next matrix first, then the shares of the others (the caller is
 * busy with the ops between the two matmuls; what it finds in another core's L2 still beats DRAM). */
void gemv_prefetch(const unsigned char* args, int tid, const StopToken& stop) {
  GemvPrefetch p;
  std::memcpy(&p, args, sizeof p);
  p.runs->fetch_add(1, std::memory_order_relaxed);
  const int own = tid % p.parts;
  for (int k = 0; k < p.parts; k++)
    if (!prefetch_share(p, (own + k) % p.parts, stop)) return;
}

/**
 * A decode step multiplies the same matrices in the same order every step, so each GEMV records itself as
 * the successor of the previous one; the helpers, once done with their share of this GEMV, prefetch the
 * recorded successor until the next job arrives. Returns the idle work (in *out), or nullptr.
 */
const IdleWork* gemv_idle_prefetch(Context& c, const WeightT& w, int rows, int nt, IdleWork* out) {
  if (c.lastGemv && c.lastGemv != &w) c.lastGemv->nextGemv = &w;
  c.lastGemv = &w;
  const WeightT* next = w.nextGemv;
  if (!c.idlePrefetch || nt < 2 || !next) return nullptr;
  const MatW& n = next->mat;
  const int parts = (int)std::min<long>(nt, (n.N + kGemvAlign - 1) / kGemvAlign);
  // a panel weight's thread share is prefetched from its start as one range (in the order of the 8 runs a
  // one-row GEMV reads it in, quant_panels.inc, it measured the same: 0.99–1.01×)
  const int streams = n.panels ? 1 : c.K->gemvStreams(n.storage, rows);
  const GemvPrefetch p{(const char*)n.data, n.N, n.rowBytes, parts, streams, &c.idlePrefetches};
  out->run = gemv_prefetch;
  std::memcpy(out->args, &p, sizeof p);
  return out;
}

/**
 * AMX GEMM (kernels with amxBlock): phase 1 packs 16-row activation blocks into bf16 hi/mid/lo planes;
 * phase 2 splits W into 32-row blocks across threads, each block multiplied with every activation block
 * of the chunk in one call (bf16 weights straight from memory, f16/int8/int4 converted into a per-thread
 * bf16 panel first), which prefetches the next weight block to L2 along the way.
 */
void matmul_amx(Context& c, float* y, const float* x, const WeightT& w, const float* bias, int rows) {
  const MatW& m = w.mat;
  const KernelTable* Kt = c.K;
  const int N = m.N, K = m.K, Kp = m.Kp;
  const int terms = amx_planes(m.storage);
  // bf16 per 16-row block; a chunk of blocks (~1 MB) is multiplied with every weight block in turn, so
  // fewer planes mean more rows per pass over W (and per int8/int4 panel conversion)
  const size_t planeElems = (size_t)terms * Kp * 16;
  int blocksPerChunk = (int)(kPackedBytes / (planeElems * 2));
  if (blocksPerChunk < 1) blocksPerChunk = 1;
  const int chunk = blocksPerChunk * 16;
  const int nBlocks = (N + 31) / 32;
  // Bytes of one 32-row weight block (rows are contiguous, so a block is one range, scales included).
  const size_t rowBytes = m.rowBytes;
  const size_t blockBytes = 32 * rowBytes;
  const char* wEnd = (const char*)m.data + (size_t)N * rowBytes;
  const int nt = threads_for(c, (double)N * Kp * rows);
  const size_t panelFloats = (size_t)(m.storage == ST_F16 ? 32 : 16) * Kp;  // 32 rows of bf16 (f16: hi and lo)
  c.reserveThreadScratch(panelFloats);
  for (int m0 = 0; m0 < rows; m0 += chunk) {
    const int mRows = rows - m0 < chunk ? rows - m0 : chunk;
    const int mb = (mRows + 15) / 16;
    uint16_t* planes = reinterpret_cast<uint16_t*>(c.xt.floats(mb * planeElems / 2 + 16));
    auto pack = [&](long b, long e, int) {
      for (long i = b; i < e; i++) {
        const int r = mRows - (int)i * 16 < 16 ? mRows - (int)i * 16 : 16;
        Kt->packBf16Planes(x + (size_t)(m0 + i * 16) * K, K, K, Kp, r, terms, planes + i * planeElems);
      }
    };
    c.pool->parallelFor(mb, 1, nt, pack);
    const AmxX xb{planes, planeElems, mb, mRows};
    auto gemm = [&](long b, long e, int tid) {
      uint16_t* panel = reinterpret_cast<uint16_t*>(c.threadScratch(tid, panelFloats));
      for (long nb = b; nb < e; nb++) {
        const int n0 = (int)nb * 32;
        const int cols = N - n0 < 32 ? N - n0 : 32;
        const uint16_t* a;
        if (m.storage == ST_BF16 && cols == 32) {
          a = (const uint16_t*)m.data + (size_t)n0 * Kp;
        } else {
          Kt->amxPanel(m, n0, cols, panel);
          a = panel;
        }
        const char* next = (const char*)m.data + (size_t)(n0 + 32) * rowBytes;
        const size_t nextBytes = next >= wEnd ? 0 : (size_t)(wEnd - next) < blockBytes ? (size_t)(wEnd - next) : blockBytes;
        Kt->amxBlock(m, a, Kp, xb, y + (size_t)m0 * N + n0, N, cols, bias ? bias + n0 : nullptr,
                     nextBytes ? next : nullptr, nextBytes);
      }
    };
    c.pool->parallelFor(nBlocks, 1, nt, gemm);
  }
}

/**
 * The panel GEMM of the builds without AMX: rows in chunks whose packed activations stay within ~1 MB (L2);
 * phase 1 packs the chunk's MR-row tiles (tileFloats each) in parallel; phase 2 splits W into panels of NR
 * rows across threads, each panel converted once into the thread's scratch (panelFloats) and multiplied
 * with every tile of the chunk from cache. pack(m0, rows, dst), panel(n0, cols, dst) and
 * tile(xt, panel, m0, n0, rows, cols) are the format's kernels.
 */
template <class Pack, class Panel, class Tile>
void gemm_panels(Context& c, const MatW& w, int rows, int NR, size_t tileFloats, size_t panelFloats, const Pack& pack,
                 const Panel& panel, const Tile& tile) {
  const int N = w.N, Kp = w.Kp;
  const int MR = c.K->gemmMR;
  int chunk = (int)(kPackedBytes / (tileFloats * 4 / MR)) / MR * MR;
  if (chunk < MR) chunk = MR;
  const int panels = (N + NR - 1) / NR;
  const int nt = threads_for(c, (double)N * Kp * rows);
  c.reserveThreadScratch(panelFloats);
  for (int m0 = 0; m0 < rows; m0 += chunk) {
    const int mRows = std::min(rows - m0, chunk);
    const int tiles = (mRows + MR - 1) / MR;
    float* xt = c.xt.floats(tiles * tileFloats);
    auto packTiles = [&](long b, long e, int) {
      for (long t = b; t < e; t++) pack(m0 + (int)t * MR, std::min(MR, mRows - (int)t * MR), xt + t * tileFloats);
    };
    c.pool->parallelFor(tiles, 1, nt, packTiles);
    auto gemm = [&](long b, long e, int tid) {
      float* p = c.threadScratch(tid, panelFloats);
      for (long i = b; i < e; i++) {
        const int n0 = (int)i * NR, cols = std::min(NR, N - n0);
        panel(n0, cols, p);
        // the next panel's weight rows (one contiguous range) into L2 while this one's tiles run
        if (i + 1 < e) {
          const char* next = static_cast<const char*>(w.data) + (size_t)(n0 + NR) * w.rowBytes;
          const size_t bytes = (size_t)std::min(NR, N - n0 - NR) * w.rowBytes;
          for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(next + o, 0, 2);
        }
        for (int t = 0; t < tiles; t++)
          tile(xt + t * tileFloats, p, m0 + t * MR, n0, std::min(MR, mRows - t * MR), cols);
      }
    };
    c.pool->parallelFor(panels, 1, nt, gemm);
  }
}

/**
 * int8/int4 weights in panels (quant_panels.inc), any number of rows: activation rows quantized to int8 codes
 * (qpPrep, in chunks of ~1 MB, in parallel when there are many), then
 * threads split the output rows as the GEMV does (16-row chunks, so whole panels) and multiply their panels
 * with every row of the chunk.
 */
void matmul_quant_panels(Context& c, float* y, const float* x, const WeightT& w, const float* bias, int rows) {
  const MatW& m = w.mat;
  const KernelTable* Kt = c.K;
  const int N = m.N, K = m.K, Kp = m.Kp;
  const size_t xstride = qp_x_floats(Kp, qp_act_terms(m.storage));
  const int chunk = std::max(Kt->gemvMaxRows, (int)(kPackedBytes / (xstride * 4)));
  const int nt = threads_for(c, (double)N * Kp * rows);
  for (int m0 = 0; m0 < rows; m0 += chunk) {
    const int mRows = std::min(rows - m0, chunk);
    float* xp = c.xpad.floats((size_t)mRows * xstride);
    auto prep = [&](long b, long e, int) {
      for (long r = b; r < e; r++) Kt->qpPrep(m.storage, x + (size_t)(m0 + r) * K, K, Kp, xp + r * xstride);
    };
    if (mRows <= Kt->gemvMaxRows)
      prep(0, mRows, 0);
    else
      c.pool->parallelFor(mRows, 1, nt, prep);
    auto job = [&](long b, long e, int) {
      Kt->qpRows(m, xp, xstride, mRows, y + (size_t)m0 * N, N, bias, (int)b, (int)e);
    };
    IdleWork idle;
    const IdleWork* next = rows <= Kt->gemvMaxRows ? gemv_idle_prefetch(c, w, rows, nt, &idle) : nullptr;
    c.pool->parallelFor(N, kGemvAlign, nt, job, kGemvSplit, next);
  }
}

}  // namespace

void matmul(Context& c, float* y, const float* x, const WeightT& w, const float* bias, int rows) {
  const MatW& m = w.mat;
  const int N = m.N, K = m.K, Kp = m.Kp;
  const KernelTable* Kt = c.K;
  if (rows <= 0) return;
  if (m.panels) {
    matmul_quant_panels(c, y, x, w, bias, rows);
    return;
  }
  if (rows <= Kt->gemvMaxRows) {
    float* xp = c.xpad.floats(gemv_prep_floats(rows, Kp));
    Kt->gemvPrep(m.storage, x, K, K, Kp, rows, xp);
    auto job = [&](long b, long e, int) { Kt->gemv(m, xp, rows, y, N, bias, (int)b, (int)e); };
    const int nt = threads_for(c, (double)N * Kp * rows);
    IdleWork idle;
    c.pool->parallelFor(N, kGemvAlign, nt, job, kGemvSplit, gemv_idle_prefetch(c, w, rows, nt, &idle));
    return;
  }

  // Past the GEMV rows (8 there), the AMX tier runs tile GEMM for every storage but f32: even a half-empty
  // 16-row tile beats the broadcast-FMA kernel (5120×960 bf16 at 8 rows: ~0.8 ms against ~1.8 ms).
  if (Kt->amxBlock && amx_storage(m.storage)) {
    matmul_amx(c, y, x, w, bias, rows);
    return;
  }

  const int MR = Kt->gemmMR;
  if (m.storage == ST_BF16 && c.useBf16Dot()) {
    // bf16 weights read in place by vdpbf16ps against the activations' hi + mid planes (bf16_dot.inc)
    const size_t blockElems = (size_t)2 * Kp * PLANE_ROWS;
    gemm_panels(
        c, m, rows, Kt->gemmNR, (size_t)Kp * MR, 0,
        [&](int m0, int r, float* dst) {
          for (int b = 0; b * PLANE_ROWS < r; b++) {
            const int r0 = m0 + b * PLANE_ROWS, cnt = std::min(PLANE_ROWS, r - b * PLANE_ROWS);
            Kt->packBf16Planes(x + (size_t)r0 * K, K, K, Kp, cnt, 2, reinterpret_cast<uint16_t*>(dst) + b * blockElems);
          }
        },
        [](int, int, float*) {},
        [&](const float* xt, const float*, int m0, int n0, int r, int cols) {
          Kt->bf16Dot(reinterpret_cast<const uint16_t*>(xt), blockElems, m, n0, y + (size_t)m0 * N + n0, N, r, cols,
                      bias ? bias + n0 : nullptr);
        });
    return;
  }
  // Even f32 weights go through the panel copy: broadcasting from 12 far-apart rows of W (cold, strided)
  // measured ~25% slower than from a compact, cache-resident panel.
  const int NR = Kt->gemmNR;
  gemm_panels(
      c, m, rows, NR, (size_t)Kp * MR, (size_t)NR * Kp,
      [&](int m0, int r, float* dst) { Kt->packX(x, K, K, Kp, m0, r, dst); },
      [&](int n0, int cols, float* p) {
        Kt->dequantRows(m, n0, cols, p);
        if (cols < NR) std::memset(p + (size_t)cols * Kp, 0, (size_t)(NR - cols) * Kp * 4);
      },
      [&](const float* xt, const float* p, int m0, int n0, int r, int cols) {
        Kt->gemmTile(xt, Kp, p, Kp, y + (size_t)m0 * N + n0, N, r, cols, bias ? bias + n0 : nullptr);
      });
}

}  // namespace loom
