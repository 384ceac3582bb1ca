// Node-API glue: class NativeCpu wraps one Context. Objects (buffers, weights, KV layers) are referred to
// by small integer ids so that every op call passes only numbers (and, for a few ops, typed arrays).
// Every id and size is checked here; a bad call throws a JS error instead of touching wild memory.
#include <napi.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "context.h"

namespace loom {
namespace {

enum Kind { K_BUF = 0, K_WEIGHT = 1, K_KV = 2 };

std::string isa_from_env() {
  const char* e = std::getenv("LOOM_CPU_ISA");
  return e ? std::string(e) : std::string();
}

class NativeCpu : public Napi::ObjectWrap<NativeCpu> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeCpu",
                       {
                           InstanceMethod("describe", &NativeCpu::Describe),
                           InstanceMethod("isa", &NativeCpu::Isa),
                           InstanceMethod("threads", &NativeCpu::Threads),
                           InstanceMethod("buffer", &NativeCpu::Buffer),
                           InstanceMethod("write", &NativeCpu::Write),
                           InstanceMethod("read", &NativeCpu::Read),
                           InstanceMethod("weight", &NativeCpu::Weight),
                           InstanceMethod("weightQuantized", &NativeCpu::WeightQuantized),
                           InstanceMethod("weightBytes", &NativeCpu::WeightBytes),
                           InstanceMethod("kvLayer", &NativeCpu::KvLayer),
                           InstanceMethod("kvBytes", &NativeCpu::KvBytes),
                           InstanceMethod("free", &NativeCpu::Free),
                           InstanceMethod("dispose", &NativeCpu::Dispose),
                           InstanceMethod("beginStep", &NativeCpu::BeginStep),
                           InstanceMethod("embed", &NativeCpu::Embed),
                           InstanceMethod("rmsNorm", &NativeCpu::RmsNorm),
                           InstanceMethod("addRmsNorm", &NativeCpu::AddRmsNorm),
                           InstanceMethod("matmul", &NativeCpu::Matmul),
                           InstanceMethod("add", &NativeCpu::Add),
                           InstanceMethod("rope", &NativeCpu::Rope),
                           InstanceMethod("headNorm", &NativeCpu::HeadNorm),
                           InstanceMethod("gatedAct", &NativeCpu::GatedAct),
                           InstanceMethod("writeKv", &NativeCpu::WriteKv),
                           InstanceMethod("attention", &NativeCpu::Attention),
                           InstanceMethod("gatherRows", &NativeCpu::GatherRows),
                           InstanceMethod("argmaxRows", &NativeCpu::ArgmaxRows),
                           InstanceMethod("copyBlocks", &NativeCpu::CopyBlocks),
                           InstanceMethod("probeBandwidth", &NativeCpu::ProbeBandwidth),
                           InstanceMethod("setIdlePrefetch", &NativeCpu::SetIdlePrefetch),
                           InstanceMethod("setQuantPanels", &NativeCpu::SetQuantPanels),
                           InstanceMethod("quantPanels", &NativeCpu::QuantPanels),
                           InstanceMethod("setBf16Dot", &NativeCpu::SetBf16Dot),
                           InstanceMethod("weightChunks", &NativeCpu::WeightChunks),
                           InstanceMethod("idlePrefetches", &NativeCpu::IdlePrefetches),
                       });
  }

  // new NativeCpu(threads, isa): isa "" = best (or LOOM_CPU_ISA when set).
  explicit NativeCpu(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeCpu>(info) {
    Napi::Env env = info.Env();
    int threads = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
    std::string want = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    if (want.empty()) want = isa_from_env();
    std::string err;
    const KernelTable* k = select_kernels(want, &err);
    if (!k) throw Napi::Error::New(env, "ISA " + want + " unavailable: " + err);
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    ctx_.reset(new Context(threads, k));
  }

 private:
  std::unique_ptr<Context> ctx_;

  Context& C(const Napi::CallbackInfo& info) {
    if (!ctx_) throw Napi::Error::New(info.Env(), "CpuBackend was disposed");
    return *ctx_;
  }
  static int I(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }
  static double D(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }
  static bool B(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Boolean>().Value(); }
  static void Fail(const Napi::CallbackInfo& info, const std::string& msg) {
    throw Napi::RangeError::New(info.Env(), msg);
  }

  BufferT& Buf(const Napi::CallbackInfo& info, size_t i, size_t need, const char* what) {
    Context& c = C(info);
    int id = I(info, i);
    if (id < 0 || (size_t)id >= c.bufs.size() || !c.bufs[id]) Fail(info, std::string(what) + ": not a live buffer");
    BufferT& b = *c.bufs[id];
    if (need > b.size)
      Fail(info, std::string(what) + ": needs " + std::to_string(need) + " elements, buffer holds " +
                     std::to_string(b.size));
    return b;
  }
  /** Runs `make` (which may throw bad_alloc), keeps what it made in `list` and returns its id. */
  template <class T, class F>
  static Napi::Value Keep(const Napi::CallbackInfo& info, std::vector<T*>& list, const char* what, F make) {
    T* obj;
    try {
      obj = make();
    } catch (const std::bad_alloc&) {
      throw Napi::Error::New(info.Env(), std::string(what) + ": out of memory");
    }
    list.push_back(obj);
    return Napi::Number::New(info.Env(), (double)list.size() - 1);
  }

  WeightT& Wt(const Napi::CallbackInfo& info, size_t i, const char* what) {
    Context& c = C(info);
    int id = I(info, i);
    if (id < 0 || (size_t)id >= c.weights.size() || !c.weights[id])
      Fail(info, std::string(what) + ": not a live weight");
    return *c.weights[id];
  }
  const float* Vec(const Napi::CallbackInfo& info, size_t i, int len, const char* what) {
    WeightT& w = Wt(info, i, what);
    if (!w.isVector || w.mat.N < len)
      Fail(info, std::string(what) + ": expected an f32 vector of at least " + std::to_string(len) + " elements");
    return (const float*)w.data;
  }
  KvLayerT& Kv(const Napi::CallbackInfo& info, size_t i) {
    Context& c = C(info);
    int id = I(info, i);
    if (id < 0 || (size_t)id >= c.kvs.size() || !c.kvs[id]) Fail(info, "not a live KV layer");
    return *c.kvs[id];
  }
  const StepMetaN& Step(const Napi::CallbackInfo& info) {
    if (!C(info).hasStep) Fail(info, "beginStep() was not called");
    return ctx_->meta;
  }
  static size_t Need(long rows, long stride, long offset, long width) {
    return rows <= 0 ? 0 : (size_t)((rows - 1) * stride + offset + width);
  }

  Napi::Value Describe(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    return Napi::String::New(info.Env(), std::string("native CPU (") + c.K->name + (c.useQuantPanels() ? " + VNNI" : "") +
                                             (c.useBf16Dot() ? " + BF16" : "") + ", " + std::to_string(c.pool->size()) +
                                             " threads)");
  }
  Napi::Value Isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), C(info).K->name); }
  Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), C(info).pool->size()); }

  // setIdlePrefetch(on): whether pool helpers prefetch the next GEMV's matrix between ops (matmul.cc).
  Napi::Value SetIdlePrefetch(const Napi::CallbackInfo& info) {
    C(info).idlePrefetch = info[0].ToBoolean().Value();
    return info.Env().Undefined();
  }
  // setQuantPanels(on): whether int8/int4 weights loaded from now on go into panels for the VNNI kernel where it
  // runs (quant.cc, matmul.cc; tests turn it off).
  Napi::Value SetQuantPanels(const Napi::CallbackInfo& info) {
    C(info).quantPanels = info[0].ToBoolean().Value();
    return info.Env().Undefined();
  }
  // quantPanels() → whether int8/int4 weights loaded now go into panels (and their matmuls quantize activations
  // to int8 planes: quant_panels.inc).
  Napi::Value QuantPanels(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), C(info).useQuantPanels()); }
  // setBf16Dot(on): whether bf16 GEMMs use the AVX512-BF16 kernel where it runs (bf16_dot.inc; tests turn it off).
  Napi::Value SetBf16Dot(const Napi::CallbackInfo& info) {
    C(info).bf16Dot = info[0].ToBoolean().Value();
    return info.Env().Undefined();
  }
  // weightChunks() → how many chunks the weight arena holds (weight_arena.h; a test hook).
  Napi::Value WeightChunks(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), (double)C(info).arena.chunks());
  }
  // idlePrefetches() → how many times a helper started prefetching a next matrix.
  Napi::Value IdlePrefetches(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), (double)C(info).idlePrefetches.load());
  }

  Napi::Value Buffer(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    double size = D(info, 0);
    if (!(size >= 0) || size > 1e12) Fail(info, "buffer: bad size");
    auto* b = new BufferT{(float*)aligned_zalloc(((size_t)size + 16) * 4), (size_t)size};
    if (!b->data) {
      delete b;
      throw Napi::Error::New(info.Env(), "buffer: out of memory");
    }
    c.bufs.push_back(b);
    return Napi::Number::New(info.Env(), (double)c.bufs.size() - 1);
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    auto arr = info[1].As<Napi::Float32Array>();
    BufferT& b = Buf(info, 0, arr.ElementLength(), "write");
    std::memcpy(b.data, arr.Data(), arr.ElementLength() * 4);
    return info.Env().Undefined();
  }

  Napi::Value Read(const Napi::CallbackInfo& info) {
    auto arr = info[1].As<Napi::Float32Array>();
    BufferT& b = Buf(info, 0, arr.ElementLength(), "read");
    std::memcpy(arr.Data(), b.data, arr.ElementLength() * 4);
    return info.Env().Undefined();
  }

  // weight(bytes: Uint8Array, srcDtype, rows, cols (0 = vector), storage) → id
  Napi::Value Weight(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    auto data = info[0].As<Napi::Uint8Array>();
    int src = I(info, 1), rows = I(info, 2), cols = I(info, 3), storage = I(info, 4);
    if (src < ST_F32 || src > ST_BF16) Fail(info, "weight: bad source dtype");
    if (storage < ST_F32 || storage > ST_INT4) Fail(info, "weight: bad storage");
    if (rows <= 0 || cols < 0) Fail(info, "weight: bad shape");
    size_t elems = (size_t)rows * (cols > 0 ? cols : 1);
    if (data.ByteLength() < elems * (src == ST_F32 ? 4 : 2)) Fail(info, "weight: data shorter than its shape");
    return Keep(info, c.weights, "weight", [&] { return make_weight(c, data.Data(), src, rows, cols, storage); });
  }

  // weightQuantized(storage int8|int4, rows, cols, q: Int8Array|Uint8Array (one code per element), scales) → id
  Napi::Value WeightQuantized(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    const int storage = I(info, 0), rows = I(info, 1), cols = I(info, 2);
    if (storage != ST_INT8 && storage != ST_INT4) Fail(info, "weightQuantized: storage must be int8 or int4");
    if (rows <= 0 || cols <= 0) Fail(info, "weightQuantized: bad shape");
    if (!info[3].IsTypedArray() || !info[4].IsTypedArray()) Fail(info, "weightQuantized: codes and scales must be typed arrays");
    auto q = info[3].As<Napi::TypedArray>();
    auto scales = info[4].As<Napi::TypedArray>();
    const size_t G = (size_t)(cols + QGROUP - 1) / QGROUP;
    if (scales.TypedArrayType() != napi_float32_array) Fail(info, "weightQuantized: scales must be a Float32Array");
    if (q.ByteLength() < (size_t)rows * cols || scales.ElementLength() < (size_t)rows * G * (storage == ST_INT4 ? 2 : 1))
      Fail(info, "weightQuantized: data shorter than its shape");
    const uint8_t* qp = (const uint8_t*)q.ArrayBuffer().Data() + q.ByteOffset();
    const float* sp = (const float*)((const uint8_t*)scales.ArrayBuffer().Data() + scales.ByteOffset());
    return Keep(info, c.weights, "weightQuantized", [&] { return make_weight_quantized(c, storage, rows, cols, qp, sp); });
  }

  Napi::Value WeightBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), (double)Wt(info, 0, "weightBytes").bytes);
  }

  Napi::Value KvLayer(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    int nb = I(info, 0), bs = I(info, 1), h = I(info, 2), d = I(info, 3), dt = I(info, 4);
    if (nb <= 0 || bs <= 0 || h <= 0 || d <= 0 || dt < KV_F32 || dt > KV_INT8) Fail(info, "kvLayer: bad arguments");
    return Keep(info, c.kvs, "kvLayer", [&] { return make_kv(nb, bs, h, d, dt); });
  }

  Napi::Value KvBytes(const Napi::CallbackInfo& info) {
    KvLayerT& kv = Kv(info, 0);
    double bytes = 2.0 * kv.elems * kv_elem_bytes(kv.dtype);
    if (kv.kScale) bytes += 2.0 * 4 * kv.numBlocks * kv.blockSize * kv.numKvHeads;
    return Napi::Number::New(info.Env(), bytes);
  }

  // free(kind, id): releases one object early (called by the TS FinalizationRegistry).
  Napi::Value Free(const Napi::CallbackInfo& info) {
    if (!ctx_) return info.Env().Undefined();
    Context& c = *ctx_;
    int kind = I(info, 0), id = I(info, 1);
    if (kind == K_BUF && id >= 0 && (size_t)id < c.bufs.size() && c.bufs[id]) {
      aligned_free(c.bufs[id]->data);
      delete c.bufs[id];
      c.bufs[id] = nullptr;
    } else if (kind == K_WEIGHT && id >= 0 && (size_t)id < c.weights.size() && c.weights[id]) {
      c.forgetWeight(c.weights[id]);
      c.arena.release(c.weights[id]->data);
      delete c.weights[id];
      c.weights[id] = nullptr;
    } else if (kind == K_KV && id >= 0 && (size_t)id < c.kvs.size() && c.kvs[id]) {
      free_kv(c.kvs[id]);
      c.kvs[id] = nullptr;
    }
    return info.Env().Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    ctx_.reset();
    return info.Env().Undefined();
  }

  static void CopyInts(const Napi::CallbackInfo& info, size_t i, size_t n, std::vector<int32_t>& dst,
                       const char* what) {
    auto arr = info[i].As<Napi::Int32Array>();
    if (arr.ElementLength() < n)
      Fail(info, std::string("beginStep: ") + what + " has " + std::to_string(arr.ElementLength()) +
                     " entries, needs " + std::to_string(n));
    if (dst.size() < n) dst.resize(n);
    if (n) std::memcpy(dst.data(), arr.Data(), n * 4);
  }

  // beginStep(numTokens, tokenIds, positions, slotMapping, numSeqs, queryStart, seqLens, blockTables, maxBlocks)
  Napi::Value BeginStep(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    StepMetaN& m = c.meta;
    int nt = I(info, 0), ns = I(info, 4), mb = I(info, 8);
    if (nt < 0 || ns < 0 || mb < 0) Fail(info, "beginStep: negative sizes");
    CopyInts(info, 1, nt, m.tokenIds, "tokenIds");
    CopyInts(info, 2, nt, m.positions, "positions");
    CopyInts(info, 3, nt, m.slotMapping, "slotMapping");
    CopyInts(info, 5, (size_t)ns + 1, m.queryStart, "queryStart");
    CopyInts(info, 6, ns, m.seqLens, "seqLens");
    CopyInts(info, 7, (size_t)ns * mb, m.blockTables, "blockTables");
    for (int s = 0; s < ns; s++)
      if (m.queryStart[s] < 0 || m.queryStart[s + 1] < m.queryStart[s] || m.queryStart[s + 1] > nt)
        Fail(info, "beginStep: queryStart is not a non-decreasing list within numTokens");
    m.numTokens = nt;
    m.numSeqs = ns;
    m.maxBlocksPerSeq = mb;
    m.gen++;
    c.hasStep = true;
    return info.Env().Undefined();
  }

  Napi::Value Embed(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    const StepMetaN& m = Step(info);
    WeightT& t = Wt(info, 1, "embed");
    if (t.isVector) Fail(info, "embed: table must be a matrix");
    BufferT& out = Buf(info, 0, (size_t)m.numTokens * t.mat.K, "embed out");
    try {
      embed(c, out.data, t, (float)D(info, 2));
    } catch (const std::exception& e) {
      Fail(info, e.what());
    }
    return info.Env().Undefined();
  }

  Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    int rows = I(info, 3), dim = I(info, 4);
    size_t n = (size_t)(rows > 0 ? rows : 0) * dim;
    BufferT& out = Buf(info, 0, n, "rmsNorm out");
    BufferT& x = Buf(info, 1, n, "rmsNorm x");
    const float* w = Vec(info, 2, dim, "rmsNorm weight");
    rms_norm(c, out.data, x.data, w, rows, dim, (float)D(info, 5), B(info, 6));
    return info.Env().Undefined();
  }

  Napi::Value AddRmsNorm(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    int rows = I(info, 4), dim = I(info, 5);
    size_t n = (size_t)(rows > 0 ? rows : 0) * dim;
    BufferT& out = Buf(info, 0, n, "addRmsNorm out");
    BufferT& res = Buf(info, 1, n, "addRmsNorm residual");
    BufferT& x = Buf(info, 2, n, "addRmsNorm x");
    const float* w = Vec(info, 3, dim, "addRmsNorm weight");
    add_rms_norm(c, out.data, res.data, x.data, w, rows, dim, (float)D(info, 6), B(info, 7));
    return info.Env().Undefined();
  }

  Napi::Value Matmul(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    WeightT& w = Wt(info, 2, "matmul");
    if (w.isVector) Fail(info, "matmul: weight must be a matrix");
    int rows = I(info, 4);
    if (rows < 0) Fail(info, "matmul: negative rows");
    BufferT& out = Buf(info, 0, (size_t)rows * w.mat.N, "matmul out");
    BufferT& x = Buf(info, 1, (size_t)rows * w.mat.K, "matmul x");
    if (out.data == x.data) Fail(info, "matmul: out must not alias x");
    const float* bias = nullptr;
    if (!info[3].IsNull() && !info[3].IsUndefined() && I(info, 3) >= 0) bias = Vec(info, 3, w.mat.N, "matmul bias");
    matmul(c, out.data, x.data, w, bias, rows);
    return info.Env().Undefined();
  }

  Napi::Value Add(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    double n = D(info, 2);
    if (!(n >= 0)) Fail(info, "add: bad n");
    BufferT& a = Buf(info, 0, (size_t)n, "add a");
    BufferT& b = Buf(info, 1, (size_t)n, "add b");
    add(c, a.data, b.data, (size_t)n);
    return info.Env().Undefined();
  }

  // rope(x, rows, rowStride, offset, numHeads, headDim, rotaryDim, invFreq, attentionFactor)
  Napi::Value Rope(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    const StepMetaN& m = Step(info);
    int rows = I(info, 1), stride = I(info, 2), off = I(info, 3), heads = I(info, 4), hd = I(info, 5),
        rot = I(info, 6);
    auto inv = info[7].As<Napi::Float32Array>();
    if (rows > m.numTokens) Fail(info, "rope: more rows than the step has tokens");
    if (rot < 0 || rot > hd || rot % 2 || inv.ElementLength() < (size_t)rot / 2) Fail(info, "rope: bad rotaryDim");
    BufferT& x = Buf(info, 0, Need(rows, stride, off, (long)heads * hd), "rope x");
    rope(c, x.data, rows, stride, off, heads, hd, rot, inv.Data(), (float)D(info, 8));
    return info.Env().Undefined();
  }

  // headNorm(x, rows, rowStride, offset, numHeads, headDim, w, eps, plusOne)
  Napi::Value HeadNorm(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    int rows = I(info, 1), stride = I(info, 2), off = I(info, 3), heads = I(info, 4), hd = I(info, 5);
    BufferT& x = Buf(info, 0, Need(rows, stride, off, (long)heads * hd), "headNorm x");
    const float* w = Vec(info, 6, hd, "headNorm weight");
    head_norm(c, x.data, rows, stride, off, heads, hd, w, (float)D(info, 7), B(info, 8));
    return info.Env().Undefined();
  }

  Napi::Value GatedAct(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    int rows = I(info, 2), inter = I(info, 3), act = I(info, 4);
    size_t n = (size_t)(rows > 0 ? rows : 0) * inter;
    BufferT& out = Buf(info, 0, n, "gatedAct out");
    BufferT& gu = Buf(info, 1, 2 * n, "gatedAct gateUp");
    gated_act(c, out.data, gu.data, rows, inter, act);
    return info.Env().Undefined();
  }

  // writeKv(kv, qkv, rowStride, kOffset, vOffset)
  Napi::Value WriteKv(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    const StepMetaN& m = Step(info);
    KvLayerT& kv = Kv(info, 0);
    int stride = I(info, 2), ko = I(info, 3), vo = I(info, 4);
    long width = (long)kv.numKvHeads * kv.headDim;
    BufferT& qkv = Buf(info, 1, Need(m.numTokens, stride, (ko > vo ? ko : vo), width), "writeKv qkv");
    try {
      write_kv(c, kv, qkv.data, stride, ko, vo);
    } catch (const std::exception& e) {
      Fail(info, e.what());
    }
    return info.Env().Undefined();
  }

  // attention(out, qkv, rowStride, kv, numHeads, numKvHeads, headDim, scale, window, softcap)
  Napi::Value Attention(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    const StepMetaN& m = Step(info);
    KvLayerT& kv = Kv(info, 3);
    int stride = I(info, 2), heads = I(info, 4), kvh = I(info, 5), hd = I(info, 6);
    BufferT& out = Buf(info, 0, (size_t)m.numTokens * heads * hd, "attention out");
    BufferT& qkv = Buf(info, 1, Need(m.numTokens, stride, 0, (long)heads * hd), "attention qkv");
    try {
      attention(c, out.data, qkv.data, stride, kv, heads, kvh, hd, (float)D(info, 7), I(info, 8),
                (float)D(info, 9));
    } catch (const std::exception& e) {
      Fail(info, e.what());
    }
    return info.Env().Undefined();
  }

  // gatherRows(out, x, rowIdx, dim)
  Napi::Value GatherRows(const Napi::CallbackInfo& info) {
    auto idx = info[2].As<Napi::Int32Array>();
    int dim = I(info, 3);
    size_t n = idx.ElementLength();
    BufferT& out = Buf(info, 0, n * dim, "gatherRows out");
    BufferT& x = Buf(info, 1, 0, "gatherRows x");
    const int32_t* ix = idx.Data();
    for (size_t i = 0; i < n; i++) {
      if (ix[i] < 0 || (size_t)(ix[i] + 1) * dim > x.size) Fail(info, "gatherRows: row index out of range");
      std::memmove(out.data + i * dim, x.data + (size_t)ix[i] * dim, (size_t)dim * 4);
    }
    return info.Env().Undefined();
  }

  // argmaxRows(x, rows, cols, out): out[r] = first index of the largest value of row r (a NaN never wins
  // unless it comes first), as src/sampler/sampler.ts argmaxAt; rows in parallel when there are many values.
  Napi::Value ArgmaxRows(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    const int rows = I(info, 1), cols = I(info, 2);
    if (rows < 0 || cols < 1) Fail(info, "argmaxRows: rows must be >= 0 and cols >= 1");
    BufferT& x = Buf(info, 0, (size_t)rows * cols, "argmaxRows x");
    auto out = info[3].As<Napi::Int32Array>();
    if (out.ElementLength() < (size_t)rows) Fail(info, "argmaxRows: out shorter than rows");
    int32_t* o = out.Data();
    auto job = [&](long b, long e, int) {
      for (long r = b; r < e; r++) {
        const float* v = x.data + (size_t)r * cols;
        int best = 0;
        float bestValue = v[0];
        for (int i = 1; i < cols; i++)
          if (v[i] > bestValue) {
            bestValue = v[i];
            best = i;
          }
        o[r] = best;
      }
    };
    c.pool->parallelFor(rows, 1, threads_for(c, (double)rows * cols), job);
    return info.Env().Undefined();
  }

  // copyBlocks(kv, src, dst)
  Napi::Value CopyBlocks(const Napi::CallbackInfo& info) {
    KvLayerT& kv = Kv(info, 0);
    auto src = info[1].As<Napi::Int32Array>();
    auto dst = info[2].As<Napi::Int32Array>();
    if (dst.ElementLength() < src.ElementLength()) Fail(info, "copyBlocks: dst shorter than src");
    try {
      copy_blocks(kv, src.Data(), dst.Data(), (int)src.ElementLength());
    } catch (const std::exception& e) {
      Fail(info, e.what());
    }
    return info.Env().Undefined();
  }

  // probeBandwidth(bytes, reps) → Float64Array of GB/s, one per rep (multi-threaded streaming read).
  Napi::Value ProbeBandwidth(const Napi::CallbackInfo& info) {
    Context& c = C(info);
    size_t bytes = (size_t)D(info, 0) / 4096 * 4096;
    int reps = I(info, 1);
    char* p = (char*)aligned_zalloc(bytes);
    if (!p) throw Napi::Error::New(info.Env(), "probeBandwidth: out of memory");
    auto fill = [&](long b, long e, int) { std::memset(p + b, 1, (size_t)(e - b)); };
    c.pool->parallelFor((long)bytes, 4096, c.pool->size(), fill);
    auto out = Napi::Float64Array::New(info.Env(), reps);
    volatile float sink = 0;
    for (int r = 0; r < reps; r++) {
      float sums[256] = {0};
      auto job = [&](long b, long e, int tid) { sums[tid] += c.K->streamRead(p + b, (size_t)(e - b)); };
      auto t0 = std::chrono::steady_clock::now();
      c.pool->parallelFor((long)bytes, 4096, c.pool->size(), job);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      sink = sink + sums[0];
      out[r] = bytes / s / 1e9;
    }
    aligned_free(p);
    return out;
  }
};

Napi::Value SupportedIsas(const Napi::CallbackInfo& info) {
  auto arr = Napi::Array::New(info.Env());
  uint32_t i = 0;
  arr.Set(i++, "scalar");
  if (cpu_supports_avx2() && kernels_avx2()) arr.Set(i++, "avx2");
  if (cpu_supports_avx512() && kernels_avx512()) arr.Set(i++, "avx512");
  if (cpu_supports_avx512() && kernels_amx() && cpu_supports_amx()) arr.Set(i++, "amx");
  return arr;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeCpu", NativeCpu::Define(env));
  exports.Set("supportedIsas", Napi::Function::New(env, SupportedIsas));
  return exports;
}

}  // namespace
}  // namespace loom

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return loom::Init(env, exports); }
NODE_API_MODULE(loom_cpu, InitModule)
