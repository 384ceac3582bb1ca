// Context ops that need more than a launch: matmul routing (GEMV / cuBLAS tensor cores / tiled SIMT),
// attention (split-K decode + flash prefill, with their scratch), uploads of small index lists, and GPU
// sampling with its copy back of ids and logprobs only. See context.h.
#include <cstring>
#include <vector>

#include "context.h"

namespace loom_cuda {

// ---------------------------------------------------------------------------------------------------------
// ops

void* Context::scratch(ScratchSlot slot, size_t bytes) {
  Scratch& s = scratch_[graphMode_ ? 1 : 0][slot];
  if (bytes <= s.bytes) return s.ptr;
  if (capturing_) {
    throw CudaError("scratch memory too small during CUDA graph capture (run the same step once in graph mode "
                    "before capturing it)");
  }
  LOOM_CHECK(cudaStreamSynchronize(stream));
  if (s.ptr) cudaFree(s.ptr);
  s = Scratch{};
  size_t n = 1 << 16;
  while (n < bytes) n *= 2;
  s.ptr = device_alloc(n, "scratch");
  s.bytes = n;
  LOOM_CHECK(cudaMemsetAsync(s.ptr, 0, n, stream));  // the attention tickets start at zero
  if (graphMode_) dropGraphs();  // captured graphs use the old graph-mode scratch
  return s.ptr;
}

void Context::matmul(float* out, const float* x, const DeviceWeight& w, const float* bias, int rows) {
  const WeightView& v = w.view;
  if (rows <= 0) return;
  const bool tensorCores = v.storage == ST_BF16 && handle_ && rows >= opts_.tensorCoreMinRows;
  if (!tensorCores && rows <= GEMV_MAX_ROWS) {
    launch_gemv(stream, out, x, v, bias, rows);
  } else if (tensorCores) {
    void* xb = scratch(SCR_ACT_BF16, (size_t)rows * v.Kp * 2);
    launch_f32_to_bf16_padded(stream, xb, x, rows, v.K, v.Kp);
    const float alpha = 1.0f, beta = 0.0f;
    // Row-major out[rows, N] is column-major outᵀ[N, rows] = W[N, Kp] · xbᵀ[Kp, rows]:
    // A = W (stored column-major as Kp × N, so op T), B = xb (column-major Kp × rows, op N).
    const int st = blas_->gemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, v.N, rows, v.Kp, &alpha, v.data, CUDA_R_16BF,
                                 v.Kp, xb, CUDA_R_16BF, v.Kp, &beta, out, CUDA_R_32F, v.N, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) throw CudaError("cublasGemmEx: " + blas_->status(st));
    if (bias) launch_add_bias(stream, out, bias, rows, v.N);
  } else {
    launch_gemm_tiled(stream, out, x, v, bias, rows);
  }
}

void Context::attention(const AttnArgs& a, int splits, int partition) {
  float* acc = nullptr;
  float* ml = nullptr;
  unsigned* tickets = nullptr;
  if (numDecode_ > 0 && splits > 1) {
    const size_t parts = (size_t)numDecode_ * a.numHeads * splits;
    acc = (float*)scratch(SCR_ATTN_ACC, parts * a.headDim * 4);
    ml = (float*)scratch(SCR_ATTN_ML, parts * 2 * 4);
    // one per (sequence, KV head, chunk of ≤ 8 query heads): at most one per query head
    tickets = (unsigned*)scratch(SCR_ATTN_TICKETS, (size_t)numDecode_ * a.numHeads * 4);
  }
  launch_attention_decode(stream, a, numDecode_, splits, partition, acc, ml, tickets);
  launch_attention_prefill(stream, a, numTiles_);
}

void Context::gatherRows(float* out, const float* x, const int* rowIdx, int n, int dim) {
  const int* dev = (const int*)stageIdx_.upload(stream, rowIdx, (size_t)n * 4, capturing_);
  launch_gather_rows(stream, out, x, dev, n, dim);
}

void Context::copyBlocks(const std::vector<DeviceKv*>& layers, const int* src, const int* dst, int n) {
  if (n <= 0) return;
  std::vector<int> both((size_t)2 * n);
  std::memcpy(both.data(), src, (size_t)n * 4);
  std::memcpy(both.data() + n, dst, (size_t)n * 4);
  const int* dev = (const int*)stageCopy_.upload(stream, both.data(), both.size() * 4, capturing_);
  for (DeviceKv* k : layers) launch_copy_blocks(stream, k->view, dev, dev + n, n);
}

void Context::sample(const float* logits, int rows, int vocab, float softcap, const float* params, const int* topK,
                     int* outIds, float* outLogprob) {
  if (capturing_) throw CudaError("sampling during CUDA graph capture");
  if (rows <= 0) return;
  if (rows > sampleCap_) {
    LOOM_CHECK(cudaStreamSynchronize(stream));
    if (sampleIdsDev_) cudaFree(sampleIdsDev_), cudaFree(sampleLpDev_), cudaFreeHost(sampleIdsHost_),
        cudaFreeHost(sampleLpHost_);
    int cap = 64;
    while (cap < rows) cap *= 2;
    sampleIdsDev_ = (int*)device_alloc((size_t)cap * 4, "sampled ids");
    sampleLpDev_ = (float*)device_alloc((size_t)cap * 4, "sampled logprobs");
    LOOM_CHECK(cudaMallocHost((void**)&sampleIdsHost_, (size_t)cap * 4));
    LOOM_CHECK(cudaMallocHost((void**)&sampleLpHost_, (size_t)cap * 4));
    sampleCap_ = cap;
  }
  SampleArgs a{};
  a.logits = logits;
  a.rows = rows;
  a.vocab = vocab;
  a.softcap = softcap;
  a.outIds = sampleIdsDev_;
  a.outLogprob = outLogprob ? sampleLpDev_ : nullptr;
  if (params) {
    // One upload: [temperature × rows | topP × rows | minP × rows | uniform × rows | topK × rows]
    std::vector<float> buf((size_t)rows * 5);
    std::memcpy(buf.data(), params, (size_t)rows * 4 * 4);
    std::memcpy(buf.data() + (size_t)rows * 4, topK, (size_t)rows * 4);
    const float* dev = (const float*)stageSample_.upload(stream, buf.data(), buf.size() * 4, false);
    a.temperature = dev;
    a.topP = dev + rows;
    a.minP = dev + 2 * rows;
    a.uniform = dev + 3 * rows;
    a.topK = (const int*)(dev + 4 * rows);
    launch_sample(stream, a);
  } else {
    launch_sample_greedy(stream, a);
  }
  LOOM_CHECK(cudaMemcpyAsync(sampleIdsHost_, sampleIdsDev_, (size_t)rows * 4, cudaMemcpyDeviceToHost, stream));
  if (outLogprob) {
    LOOM_CHECK(cudaMemcpyAsync(sampleLpHost_, sampleLpDev_, (size_t)rows * 4, cudaMemcpyDeviceToHost, stream));
  }
  LOOM_CHECK(cudaStreamSynchronize(stream));
  std::memcpy(outIds, sampleIdsHost_, (size_t)rows * 4);
  if (outLogprob) std::memcpy(outLogprob, sampleLpHost_, (size_t)rows * 4);
}

}  // namespace loom_cuda
