// Paged attention driver: splits the step into tiles (sequence × KV head × run of query tokens), hands
// them out dynamically (largest first) and lets the ISA kernel run each with an online softmax.
// Decode steps give one tile per (sequence, KV head) whose rows are that KV head's query heads, so each
// cached K/V row is read once per GQA group.
#include <atomic>
#include <stdexcept>
#include <string>

#include "context.h"

namespace loom {

void attention(Context& c, float* out, const float* qkv, int rowStride, const KvLayerT& kv, int numHeads,
               int numKvHeads, int headDim, float scale, int window, float softcap) {
  const StepMetaN& m = c.meta;
  if (numKvHeads <= 0 || numHeads % numKvHeads != 0)
    throw std::invalid_argument("attention: numHeads must be a multiple of numKvHeads");
  if (kv.numKvHeads != numKvHeads || kv.headDim != headDim)
    throw std::invalid_argument("attention: KV layer shape does not match the attention params");
  const int group = numHeads / numKvHeads;
  const int tq = group >= 64 ? 1 : 64 / group;  // query tokens per tile
  const int bs = kv.blockSize;
  c.attnTasks.clear();
  double work = 0;
  for (int s = 0; s < m.numSeqs; s++) {
    const int qLen = m.queryStart[s + 1] - m.queryStart[s];
    const int seqLen = m.seqLens[s];
    if (qLen <= 0) continue;
    if (seqLen < qLen || m.queryStart[s + 1] > m.numTokens)
      throw std::range_error("attention: sequence " + std::to_string(s) + " has inconsistent lengths");
    const int blocks = (seqLen + bs - 1) / bs;
    if (blocks > m.maxBlocksPerSeq)
      throw std::range_error("attention: sequence " + std::to_string(s) + " needs more blocks than maxBlocksPerSeq");
    const int32_t* bt = m.blockTables.data() + (size_t)s * m.maxBlocksPerSeq;
    for (int b = 0; b < blocks; b++)
      if (bt[b] < 0 || bt[b] >= kv.numBlocks)
        throw std::range_error("attention: block id " + std::to_string(bt[b]) + " out of range");
    // Largest tiles (latest queries see the most keys) first.
    for (int t1 = qLen; t1 > 0; t1 -= tq) {
      const int t0 = t1 - tq > 0 ? t1 - tq : 0;
      for (int h = 0; h < numKvHeads; h++) c.attnTasks.push_back(AttnTask{s, h, t0, t1});
      work += (double)(t1 - t0) * group * numKvHeads * (seqLen - qLen + t1) * headDim * 2;
    }
  }
  AttnArgs a{qkv,
             rowStride,
             out,
             &kv,
             numHeads,
             numKvHeads,
             headDim,
             scale,
             window,
             softcap,
             m.queryStart.data(),
             m.seqLens.data(),
             m.blockTables.data(),
             m.maxBlocksPerSeq};
  const size_t scratch = attn_scratch_floats(tq * group, headDim);
  c.reserveThreadScratch(scratch);
  const int nTasks = (int)c.attnTasks.size();
  auto job = [&](long b, long e, int tid) {
    float* buf = c.threadScratch(tid, scratch);
    for (long i = b; i < e; i++) c.K->attentionTile(a, c.attnTasks[i], buf);
  };
  // Fine chunks (tiles differ in cost): each thread starts on its own run, then steals.
  c.pool->parallelFor(nTasks, 1, threads_for(c, work), job, 16);
}

}  // namespace loom
