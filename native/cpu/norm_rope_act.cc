// Row-wise ops: RMSNorm (plain, fused with the residual add, and per head), rotary embedding, gated
// activations, add and embedding lookup. Threads split rows; tiny ops stay on the calling thread.
#include <math.h>

#include <cstring>
#include <stdexcept>

#include "context.h"

namespace loom {

void rms_norm(Context& c, float* out, const float* x, const float* w, int rows, int dim, float eps, bool plusOne) {
  auto job = [&](long b, long e, int) {
    for (long r = b; r < e; r++) c.K->rmsNorm(out + (size_t)r * dim, x + (size_t)r * dim, w, dim, eps, plusOne);
  };
  c.pool->parallelFor(rows, 1, threads_for(c, (double)rows * dim * 4), job);
}

void add_rms_norm(Context& c, float* out, float* res, const float* x, const float* w, int rows, int dim, float eps,
                  bool plusOne) {
  auto job = [&](long b, long e, int) {
    for (long r = b; r < e; r++)
      c.K->addRmsNorm(out + (size_t)r * dim, res + (size_t)r * dim, x + (size_t)r * dim, w, dim, eps, plusOne);
  };
  c.pool->parallelFor(rows, 1, threads_for(c, (double)rows * dim * 4), job);
}

void head_norm(Context& c, float* x, int rows, int rowStride, int offset, int numHeads, int headDim, const float* w,
               float eps, bool plusOne) {
  auto job = [&](long b, long e, int) {
    for (long r = b; r < e; r++)
      for (int h = 0; h < numHeads; h++) {
        float* p = x + (size_t)r * rowStride + offset + (size_t)h * headDim;
        c.K->rmsNorm(p, p, w, headDim, eps, plusOne);
      }
  };
  c.pool->parallelFor(rows, 1, threads_for(c, (double)rows * numHeads * headDim * 4), job);
}

void rope(Context& c, float* x, int rows, int rowStride, int offset, int numHeads, int headDim, int rotaryDim,
          const float* invFreq, float attentionFactor) {
  const int half = rotaryDim / 2;
  if (half <= 0 || rows <= 0) return;
  // cos/sin per (token, frequency), cached for the step: q and k of every layer usually share them.
  bool hit = c.ropeGen == c.meta.gen && c.ropeRows >= rows && c.ropeHalf == half &&
             c.ropeFactor == attentionFactor && std::memcmp(c.ropeInvFreq.data(), invFreq, (size_t)half * 4) == 0;
  float* cosv = c.ropeCos.floats((size_t)c.meta.numTokens * half + 1);
  float* sinv = c.ropeSin.floats((size_t)c.meta.numTokens * half + 1);
  if (!hit) {
    const int n = c.meta.numTokens;
    const int32_t* pos = c.meta.positions.data();
    for (int r = 0; r < n; r++)
      for (int i = 0; i < half; i++) {
        // transformers computes the angle in float32; cos/sin in double like the reference.
        float angle = (float)((double)pos[r] * (double)invFreq[i]);
        cosv[(size_t)r * half + i] = (float)(cos((double)angle) * attentionFactor);
        sinv[(size_t)r * half + i] = (float)(sin((double)angle) * attentionFactor);
      }
    c.ropeGen = c.meta.gen;
    c.ropeRows = n;
    c.ropeHalf = half;
    c.ropeFactor = attentionFactor;
    c.ropeInvFreq.assign(invFreq, invFreq + half);
  }
  auto job = [&](long b, long e, int) {
    for (long r = b; r < e; r++)
      c.K->rope(x + (size_t)r * rowStride + offset, numHeads, headDim, half, cosv + (size_t)r * half,
                sinv + (size_t)r * half);
  };
  c.pool->parallelFor(rows, 1, threads_for(c, (double)rows * numHeads * half * 6), job);
}

void gated_act(Context& c, float* out, const float* gu, int rows, int inter, int act) {
  auto job = [&](long b, long e, int) {
    for (long r = b; r < e; r++) c.K->gatedAct(out + (size_t)r * inter, gu + (size_t)r * 2 * inter, inter, act);
  };
  c.pool->parallelFor(rows, 1, threads_for(c, (double)rows * inter * 4), job);
}

void add(Context& c, float* a, const float* b, size_t n) {
  auto job = [&](long s, long e, int) { c.K->add(a + s, b + s, (size_t)(e - s)); };
  c.pool->parallelFor((long)n, 64, threads_for(c, (double)n), job);
}

void embed(Context& c, float* out, const WeightT& table, float scale) {
  const int n = c.meta.numTokens;
  const int dim = table.isVector ? 1 : table.mat.K;
  const int32_t* ids = c.meta.tokenIds.data();
  for (int i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= table.mat.N)
      throw std::range_error("embed: token id " + std::to_string(ids[i]) + " out of range [0, " +
                             std::to_string(table.mat.N) + ")");
  const int Kp = table.mat.Kp;
  c.reserveThreadScratch((size_t)Kp + 16);
  auto job = [&](long b, long e, int tid) {
    float* tmp = c.threadScratch(tid, (size_t)Kp + 16);
    for (long i = b; i < e; i++) {
      c.K->dequantRows(table.mat, ids[i], 1, tmp);
      float* o = out + (size_t)i * dim;
      for (int j = 0; j < dim; j++) o[j] = tmp[j] * scale;
    }
  };
  c.pool->parallelFor(n, 1, threads_for(c, (double)n * dim * 8), job);
}

}  // namespace loom
