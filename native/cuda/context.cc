// Context: device setup, object lifetimes, the step-metadata upload, matmul dispatch (GEMV / cuBLAS /
// tiled SIMT), scratch memory and CUDA graph capture/replay. See context.h.
#include "context.h"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "host_pack.h"

namespace loom_cuda {

namespace {

template <typename T>
int push_object(std::vector<std::unique_ptr<T>>& v, std::unique_ptr<T> obj) {
  for (size_t i = 0; i < v.size(); i++) {
    if (!v[i]) {
      v[i] = std::move(obj);
      return (int)i;
    }
  }
  v.push_back(std::move(obj));
  return (int)v.size() - 1;
}

}  // namespace

void* device_alloc(size_t bytes, const char* what) {
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes == 0 ? 16 : bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t freeB = 0, totalB = 0;
    cudaMemGetInfo(&freeB, &totalB);
    std::ostringstream m;
    m << "out of device memory allocating " << bytes << " bytes for " << what << " (" << freeB / (1 << 20)
      << " MiB free of " << totalB / (1 << 20) << " MiB): " << cudaGetErrorString(e);
    throw CudaError(m.str());
  }
  return p;
}

namespace {

size_t kv_elem_bytes(int dtype) { return dtype == KV_F32 ? 4 : dtype == KV_INT8 ? 1 : 2; }

}  // namespace

std::string device_unavailable_reason(int device) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice || e != cudaSuccess) {
    cudaGetLastError();
    if (e == cudaErrorNoDevice) return "no CUDA device found (cudaGetDeviceCount: cudaErrorNoDevice)";
    if (e == cudaErrorInsufficientDriver) {
      return "no usable CUDA driver (libcuda.so missing or older than the CUDA 13 runtime: "
             "cudaErrorInsufficientDriver)";
    }
    return std::string("CUDA unavailable: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  }
  if (n == 0) return "no CUDA device found";
  if (device < 0 || device >= n) {
    return "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) + " found)";
  }
  return "";
}

// ---------------------------------------------------------------------------------------------------------
// Staging

void* Staging::upload(cudaStream_t s, const void* src, size_t bytes, bool capturing) {
  if (bytes == 0) return dev;
  if (pending) {
    LOOM_CHECK(cudaEventSynchronize(ev));
    pending = false;
  }
  if (bytes > cap) {
    if (capturing) throw CudaError("staging buffer too small during CUDA graph capture");
    LOOM_CHECK(cudaStreamSynchronize(s));
    release();
    size_t n = 4096;
    while (n < bytes) n *= 2;
    LOOM_CHECK(cudaMallocHost(&host, n));
    dev = device_alloc(n, "staging");
    cap = n;
  }
  if (!ev) LOOM_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  std::memcpy(host, src, bytes);
  LOOM_CHECK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, s));
  LOOM_CHECK(cudaEventRecord(ev, s));
  pending = true;
  return dev;
}

void Staging::release() {
  if (host) cudaFreeHost(host);
  if (dev) cudaFree(dev);
  host = dev = nullptr;
  cap = 0;
}

// ---------------------------------------------------------------------------------------------------------
// Context

Context::Context(const ContextOptions& opts) : opts_(opts) {
  const std::string why = device_unavailable_reason(opts.device);
  if (!why.empty()) throw CudaError(why);
  LOOM_CHECK(cudaSetDevice(opts.device));
  LOOM_CHECK(cudaGetDeviceProperties(&props_, opts.device));
  if (props_.major < 8) {
    throw CudaError(std::string(props_.name) + " is sm_" + std::to_string(props_.major) +
                    std::to_string(props_.minor) + "; the CUDA backend is built for sm_80 and sm_90");
  }
  LOOM_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const char* sync = std::getenv("LOOM_CUDA_SYNC");
  syncEachOp_ = sync && std::strcmp(sync, "1") == 0;
  attention_init((int)props_.sharedMemPerBlockOptin);

  if (opts.cublasMode != 2) {
    blas_ = &load_cublas();
    if (!blas_->ok()) {
      if (opts.cublasMode == 0) {
        const std::string err = blas_->error;
        cudaStreamDestroy(stream);
        stream = nullptr;
        throw CudaError(err);
      }
      blasNote_ = "no cuBLAS (" + blas_->error + "); SIMT GEMM only";
    } else {
      int st = blas_->create(&handle_);
      if (st != CUBLAS_STATUS_SUCCESS) {
        handle_ = nullptr;
        const std::string err = "cublasCreate failed: " + blas_->status(st);
        if (opts.cublasMode == 0) {
          cudaStreamDestroy(stream);
          stream = nullptr;
          throw CudaError(err);
        }
        blasNote_ = err;
      } else {
        blas_->setStream(handle_, stream);
        // An explicit workspace: cuBLAS then allocates nothing while a CUDA graph is being captured.
        if (blas_->setWorkspace) {
          const size_t ws = 32u << 20;
          blasWorkspace_ = device_alloc(ws, "cuBLAS workspace");
          blas_->setWorkspace(handle_, blasWorkspace_, ws);
        }
        int ver = 0;
        if (blas_->getVersion) blas_->getVersion(handle_, &ver);
        std::ostringstream m;
        m << "cuBLAS " << ver / 10000 << "." << (ver / 100) % 100 << "." << ver % 100;
        blasNote_ = m.str();
      }
    }
  } else {
    blasNote_ = "cuBLAS off; SIMT GEMM only";
  }
}

Context::~Context() {
  try {
    releaseAll();
  } catch (...) {
  }
}

void Context::releaseAll() {
  if (stream) cudaStreamSynchronize(stream);
  if (capturing_) abortCapture();
  dropGraphs();
  for (auto& b : bufs)
    if (b) cudaFree(b->ptr);
  for (auto& w : weights) {
    if (!w) continue;
    cudaFree(w->data);
    if (w->scales) cudaFree(w->scales);
  }
  for (auto& k : kvs) {
    if (!k) continue;
    cudaFree(k->view.k);
    cudaFree(k->view.v);
    if (k->view.kScale) cudaFree(k->view.kScale);
    if (k->view.vScale) cudaFree(k->view.vScale);
  }
  for (auto& c : consts)
    if (c) cudaFree(c->ptr);
  bufs.clear();
  weights.clear();
  kvs.clear();
  consts.clear();
  for (int m = 0; m < 2; m++)
    for (int s = 0; s < SCR_COUNT; s++)
      if (scratch_[m][s].ptr) cudaFree(scratch_[m][s].ptr), scratch_[m][s] = Scratch{};
  if (metaDev_) cudaFree(metaDev_);
  metaDev_ = nullptr;
  for (int i = 0; i < 2; i++) {
    if (metaHost_[i]) cudaFreeHost(metaHost_[i]);
    if (metaEv_[i]) cudaEventDestroy(metaEv_[i]);
    metaHost_[i] = nullptr;
    metaEv_[i] = nullptr;
  }
  for (Staging* s : {&stageIdx_, &stageCopy_, &stageSample_}) {
    s->release();
    if (s->ev) cudaEventDestroy(s->ev);
    s->ev = nullptr;
  }
  if (sampleIdsDev_) cudaFree(sampleIdsDev_);
  if (sampleLpDev_) cudaFree(sampleLpDev_);
  if (sampleIdsHost_) cudaFreeHost(sampleIdsHost_);
  if (sampleLpHost_) cudaFreeHost(sampleLpHost_);
  sampleIdsDev_ = nullptr;
  sampleLpDev_ = nullptr;
  sampleIdsHost_ = nullptr;
  sampleLpHost_ = nullptr;
  if (handle_) blas_->destroy(handle_);
  handle_ = nullptr;
  if (blasWorkspace_) cudaFree(blasWorkspace_);
  blasWorkspace_ = nullptr;
  if (stream) cudaStreamDestroy(stream);
  stream = nullptr;
}

std::string Context::describe() const {
  std::ostringstream m;
  m << "cuda: " << props_.name << " (sm_" << props_.major << props_.minor << ", " << props_.multiProcessorCount
    << " SMs, " << (double)props_.totalGlobalMem / (1024.0 * 1024 * 1024) << " GiB), " << blasNote_;
  return m.str();
}

void Context::memInfo(size_t* freeBytes, size_t* totalBytes) const {
  LOOM_CHECK(cudaMemGetInfo(freeBytes, totalBytes));
}

int Context::newBuffer(size_t size) {
  auto b = std::make_unique<DeviceBuffer>();
  b->ptr = (float*)device_alloc(size * 4, "an activation buffer");
  b->size = size;
  LOOM_CHECK(cudaMemsetAsync(b->ptr, 0, size * 4, stream));
  return push_object(bufs, std::move(b));
}

namespace {
std::unique_ptr<DeviceWeight> upload_packed(const PackedWeight& p, int storage, cudaStream_t s) {
  auto w = std::make_unique<DeviceWeight>();
  w->rows = p.rows;
  w->cols = p.cols;
  w->isVector = p.cols <= 0;
  w->data = device_alloc(p.data.size(), "a weight");
  // On the compute stream, then waited for: a plain cudaMemcpy from pageable memory runs on the legacy
  // stream (which the non-blocking compute stream does not wait for) and may return before its DMA lands.
  LOOM_CHECK(cudaMemcpyAsync(w->data, p.data.data(), p.data.size(), cudaMemcpyHostToDevice, s));
  if (!p.scales.empty()) {
    w->scales = (float*)device_alloc(p.scales.size() * 4, "weight scales");
    LOOM_CHECK(cudaMemcpyAsync(w->scales, p.scales.data(), p.scales.size() * 4, cudaMemcpyHostToDevice, s));
  }
  LOOM_CHECK(cudaStreamSynchronize(s));  // the source is a temporary
  w->bytes = p.data.size() + p.scales.size() * 4;
  w->view = WeightView{w->isVector ? ST_F32 : storage, p.rows, p.cols, p.Kp, w->data, w->scales};
  return w;
}
}  // namespace

int Context::newWeight(const uint8_t* src, int srcDtype, int rows, int cols, int storage) {
  const PackedWeight p = pack_weight(src, srcDtype, rows, cols, storage);
  return push_object(weights, upload_packed(p, storage, stream));
}

int Context::newQuantizedWeight(int kind, int rows, int cols, const void* q, const float* scales) {
  const PackedWeight p = pack_quantized(kind, rows, cols, q, scales);
  return push_object(weights, upload_packed(p, kind, stream));
}

int Context::newKv(int numBlocks, int blockSize, int numKvHeads, int headDim, int dtype) {
  auto k = std::make_unique<DeviceKv>();
  const size_t vecs = (size_t)numBlocks * blockSize * numKvHeads;
  const size_t bytes = vecs * headDim * kv_elem_bytes(dtype);
  k->view = KvView{dtype, numBlocks, blockSize, numKvHeads, headDim, nullptr, nullptr, nullptr, nullptr};
  k->view.k = device_alloc(bytes, "the K cache");
  k->view.v = device_alloc(bytes, "the V cache");
  LOOM_CHECK(cudaMemsetAsync(k->view.k, 0, bytes, stream));
  LOOM_CHECK(cudaMemsetAsync(k->view.v, 0, bytes, stream));
  k->bytes = 2 * bytes;
  if (dtype == KV_INT8) {
    k->view.kScale = (float*)device_alloc(vecs * 4, "K cache scales");
    k->view.vScale = (float*)device_alloc(vecs * 4, "V cache scales");
    LOOM_CHECK(cudaMemsetAsync(k->view.kScale, 0, vecs * 4, stream));
    LOOM_CHECK(cudaMemsetAsync(k->view.vScale, 0, vecs * 4, stream));
    k->bytes += 2 * vecs * 4;
  }
  return push_object(kvs, std::move(k));
}

int Context::newConst(const float* data, size_t n) {
  auto c = std::make_unique<DeviceConst>();
  c->ptr = (float*)device_alloc(n * 4, "a constant");
  c->size = n;
  LOOM_CHECK(cudaMemcpyAsync(c->ptr, data, n * 4, cudaMemcpyHostToDevice, stream));  // see upload_packed
  LOOM_CHECK(cudaStreamSynchronize(stream));
  return push_object(consts, std::move(c));
}

void Context::freeObject(int kind, int id) {
  // Objects may still be read by queued kernels: wait for them (frees are rare, from GC or dispose).
  if (capturing_) return;  // never synchronize inside a capture; the object stays until dispose
  LOOM_CHECK(cudaStreamSynchronize(stream));
  if (kind == 0 && id >= 0 && (size_t)id < bufs.size() && bufs[id]) {
    cudaFree(bufs[id]->ptr);
    bufs[id].reset();
  } else if (kind == 1 && id >= 0 && (size_t)id < weights.size() && weights[id]) {
    cudaFree(weights[id]->data);
    if (weights[id]->scales) cudaFree(weights[id]->scales);
    weights[id].reset();
  } else if (kind == 2 && id >= 0 && (size_t)id < kvs.size() && kvs[id]) {
    KvView& v = kvs[id]->view;
    cudaFree(v.k);
    cudaFree(v.v);
    if (v.kScale) cudaFree(v.kScale);
    if (v.vScale) cudaFree(v.vScale);
    kvs[id].reset();
  } else if (kind == 3 && id >= 0 && (size_t)id < consts.size() && consts[id]) {
    cudaFree(consts[id]->ptr);
    consts[id].reset();
  } else {
    return;
  }
  // A captured graph may have referenced the object.
  dropGraphs();
}

void Context::write(DeviceBuffer& b, const float* data, size_t n) {
  if (capturing_) throw CudaError("write() during CUDA graph capture");
  LOOM_CHECK(cudaMemcpyAsync(b.ptr, data, n * 4, cudaMemcpyHostToDevice, stream));
  // Pageable source: the call returns once the data is staged, but wait so that errors surface here.
  LOOM_CHECK(cudaStreamSynchronize(stream));
}

void Context::read(const DeviceBuffer& b, float* out, size_t n) {
  if (capturing_) throw CudaError("read() during CUDA graph capture");
  LOOM_CHECK(cudaMemcpyAsync(out, b.ptr, n * 4, cudaMemcpyDeviceToHost, stream));
  LOOM_CHECK(cudaStreamSynchronize(stream));
}

// ---------------------------------------------------------------------------------------------------------
// step metadata

void Context::setMetaLayout(const MetaLayout& layout) {
  if (capturing_) throw CudaError("setMetaLayout() during CUDA graph capture");
  if (layout.capacity > metaCap_) {
    LOOM_CHECK(cudaStreamSynchronize(stream));
    dropGraphs();  // graphs bake the old meta pointer in
    if (metaDev_) cudaFree(metaDev_);
    for (int i = 0; i < 2; i++) {
      if (metaHost_[i]) cudaFreeHost(metaHost_[i]);
      metaHost_[i] = nullptr;
      metaPending_[i] = false;
      if (!metaEv_[i]) LOOM_CHECK(cudaEventCreateWithFlags(&metaEv_[i], cudaEventDisableTiming));
    }
    metaDev_ = nullptr;
    metaCap_ = 0;
    metaDev_ = (int*)device_alloc((size_t)layout.capacity * 4, "step metadata");
    for (int i = 0; i < 2; i++) LOOM_CHECK(cudaMallocHost((void**)&metaHost_[i], (size_t)layout.capacity * 4));
    metaCap_ = layout.capacity;
  } else if (hasLayout_ && std::memcmp(&layout, &layout_, sizeof layout) != 0) {
    dropGraphs();  // same buffer, moved sections
  }
  layout_ = layout;
  hasLayout_ = true;
  hasStep_ = false;
}

void Context::beginStep(const int* packed, int ints, int numTokens, int numSeqs, int numDecode, int numTiles) {
  if (capturing_) throw CudaError("beginStep() during CUDA graph capture");
  if (!hasLayout_) throw CudaError("beginStep() before setMetaLayout()");
  if (ints > metaCap_) throw CudaError("beginStep(): packed metadata exceeds the layout's capacity");
  const int slot = metaSlot_;
  metaSlot_ ^= 1;
  if (metaPending_[slot]) LOOM_CHECK(cudaEventSynchronize(metaEv_[slot]));
  std::memcpy(metaHost_[slot], packed, (size_t)ints * 4);
  LOOM_CHECK(cudaMemcpyAsync(metaDev_, metaHost_[slot], (size_t)ints * 4, cudaMemcpyHostToDevice, stream));
  LOOM_CHECK(cudaEventRecord(metaEv_[slot], stream));
  metaPending_[slot] = true;
  numTokens_ = numTokens;
  numSeqs_ = numSeqs;
  numDecode_ = numDecode;
  numTiles_ = numTiles;
  hasStep_ = true;
}

StepPtrs Context::step() const {
  const int* m = metaDev_;
  return StepPtrs{m + layout_.tokenIds,   m + layout_.positions,  m + layout_.slotMapping, m + layout_.queryStart,
                  m + layout_.seqLens,    m + layout_.blockTables, layout_.blockTableStride, m + layout_.decodeSeqs,
                  m + layout_.tileSeq,    m + layout_.tileQ0};
}

void Context::afterOp(const char* op) {
  if (!syncEachOp_ || capturing_) return;
  cudaError_t e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) check(e, op);
}

void Context::synchronize() { LOOM_CHECK(cudaStreamSynchronize(stream)); }

}  // namespace loom_cuda
