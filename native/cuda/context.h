// One CUDA backend instance: a device, a stream, the objects JS refers to by integer ids (activation
// buffers, weights, KV layers, small constant arrays), the packed step metadata, scratch memory, cuBLAS and
// captured CUDA graphs. Host code only; every kernel is enqueued on `stream` without synchronizing.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "cublas_loader.h"
#include "kernels.h"

namespace loom_cuda {

struct DeviceBuffer {
  float* ptr = nullptr;
  size_t size = 0;  // elements
};

struct DeviceWeight {
  WeightView view{};
  bool isVector = false;
  int rows = 0;
  int cols = 0;
  size_t bytes = 0;
  void* data = nullptr;
  float* scales = nullptr;
};

struct DeviceKv {
  KvView view{};
  size_t bytes = 0;
};

struct DeviceConst {
  float* ptr = nullptr;
  size_t size = 0;
};

/**
 * Pinned host memory + device memory for small uploads (row indices, block copy lists, sampling
 * parameters). The pinned side is reused only after the event recorded behind its last copy completed.
 */
struct Staging {
  void* host = nullptr;
  void* dev = nullptr;
  size_t cap = 0;
  cudaEvent_t ev = nullptr;
  bool pending = false;
  /** Copies `bytes` from `src` to the device on `s`; returns the device copy (valid in stream order). */
  void* upload(cudaStream_t s, const void* src, size_t bytes, bool capturing);
  void release();
};

/** Scratch areas; separate sets for eager steps and graph-mode steps (see Context::setGraphMode). */
enum ScratchSlot { SCR_ACT_BF16 = 0, SCR_ATTN_ACC = 1, SCR_ATTN_ML = 2, SCR_ATTN_TICKETS = 3, SCR_COUNT = 4 };

struct ContextOptions {
  int device = 0;
  /** 0: cuBLAS must load (else the constructor throws); 1: use it when it loads; 2: never use it. */
  int cublasMode = 0;
  /** Matmuls of bf16 weights with at least this many rows go to cuBLAS (≥ 1; INT_MAX = never); the rest of
   *  ≤ GEMV_MAX_ROWS rows to the GEMV kernel. */
  int tensorCoreMinRows = 2;
};

class Context {
 public:
  explicit Context(const ContextOptions& opts);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // ---- identity and memory ----
  std::string describe() const;
  void memInfo(size_t* freeBytes, size_t* totalBytes) const;
  const cudaDeviceProp& props() const { return props_; }
  bool hasCublas() const { return handle_ != nullptr; }

  // ---- objects (ids index these vectors; a freed slot is null) ----
  std::vector<std::unique_ptr<DeviceBuffer>> bufs;
  std::vector<std::unique_ptr<DeviceWeight>> weights;
  std::vector<std::unique_ptr<DeviceKv>> kvs;
  std::vector<std::unique_ptr<DeviceConst>> consts;

  int newBuffer(size_t size);
  int newWeight(const uint8_t* src, int srcDtype, int rows, int cols, int storage);
  int newQuantizedWeight(int kind, int rows, int cols, const void* q, const float* scales);
  int newKv(int numBlocks, int blockSize, int numKvHeads, int headDim, int dtype);
  int newConst(const float* data, size_t n);
  void freeObject(int kind, int id);
  void write(DeviceBuffer& b, const float* data, size_t n);
  void read(const DeviceBuffer& b, float* out, size_t n);

  // ---- step metadata ----
  /** Sets the section layout (ints); grows the meta buffers when layout.capacity exceeds them. */
  void setMetaLayout(const MetaLayout& layout);
  /** One pinned upload of `ints` packed ints (step-pack.ts) + the step's counts. */
  void beginStep(const int* packed, int ints, int numTokens, int numSeqs, int numDecode, int numTiles);
  bool hasStep() const { return hasStep_; }
  StepPtrs step() const;
  int numTokens() const { return numTokens_; }
  int numDecode() const { return numDecode_; }
  int numTiles() const { return numTiles_; }

  // ---- ops (arguments validated by the caller) ----
  void matmul(float* out, const float* x, const DeviceWeight& w, const float* bias, int rows);
  void attention(const AttnArgs& a, int splits, int partition);
  void gatherRows(float* out, const float* x, const int* rowIdx, int n, int dim);
  void copyBlocks(const std::vector<DeviceKv*>& layers, const int* src, const int* dst, int n);
  void sample(const float* logits, int rows, int vocab, float softcap, const float* params, const int* topK,
              int* outIds, float* outLogprob);

  // ---- CUDA graphs ----
  void setGraphMode(bool on) { graphMode_ = on; }
  void beginCapture();
  void endCapture(long long key);
  void abortCapture();
  void replay(long long key);
  bool hasGraph(long long key) const { return graphs_.count(key) != 0; }
  void dropGraphs();
  int graphCount() const { return (int)graphs_.size(); }
  bool capturing() const { return capturing_; }

  /** After an op: with LOOM_CUDA_SYNC=1 waits for it and reports an execution error by op name. */
  void afterOp(const char* op);
  void synchronize();

  cudaStream_t stream = nullptr;

 private:
  void* scratch(ScratchSlot slot, size_t bytes);
  void releaseAll();

  ContextOptions opts_;
  cudaDeviceProp props_{};
  const Cublas* blas_ = nullptr;
  cublasHandle handle_ = nullptr;
  void* blasWorkspace_ = nullptr;
  std::string blasNote_;

  // meta: device buffer + two pinned staging buffers (alternating, each guarded by an event)
  int* metaDev_ = nullptr;
  int* metaHost_[2] = {nullptr, nullptr};
  cudaEvent_t metaEv_[2] = {nullptr, nullptr};
  bool metaPending_[2] = {false, false};
  int metaSlot_ = 0;
  int metaCap_ = 0;
  MetaLayout layout_{};
  bool hasLayout_ = false;
  bool hasStep_ = false;
  int numTokens_ = 0, numSeqs_ = 0, numDecode_ = 0, numTiles_ = 0;

  struct Scratch {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  Scratch scratch_[2][SCR_COUNT];

  Staging stageIdx_, stageCopy_, stageSample_;
  int* sampleIdsDev_ = nullptr;
  float* sampleLpDev_ = nullptr;
  int* sampleIdsHost_ = nullptr;
  float* sampleLpHost_ = nullptr;
  int sampleCap_ = 0;

  bool graphMode_ = false;
  bool capturing_ = false;
  std::unordered_map<long long, cudaGraphExec_t> graphs_;
  bool syncEachOp_ = false;
};

/** cudaMalloc with an error that says how much memory is free. */
void* device_alloc(size_t bytes, const char* what);

/** Why no device can be used (driver missing, no device, …), or "" when device `device` is usable. */
std::string device_unavailable_reason(int device);

}  // namespace loom_cuda
