// Node-API glue of the CUDA backend: class NativeCuda wraps one Context; objects are referred to by small
// integer ids so that op calls pass only numbers (and a few typed arrays). Ids and buffer capacities are
// checked here as a last line of defence (src/backends/cuda/checks.ts gives the user-facing messages), so
// a bad call throws a JS error instead of making a kernel touch wild memory. The module functions that need
// no GPU are in addon_host.cc.
#include <napi.h>

#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "addon_args.h"
#include "context.h"

namespace loom_cuda {
namespace {

enum Kind { K_BUF = 0, K_WEIGHT = 1, K_KV = 2, K_CONST = 3 };

class NativeCuda : public Napi::ObjectWrap<NativeCuda> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "NativeCuda",
        {
            InstanceMethod("describe", &NativeCuda::Describe),
            InstanceMethod("deviceInfo", &NativeCuda::DeviceInfo),
            InstanceMethod("memInfo", &NativeCuda::MemInfo),
            InstanceMethod("hasCublas", &NativeCuda::HasCublas),
            InstanceMethod("buffer", &NativeCuda::Buffer),
            InstanceMethod("write", &NativeCuda::Write),
            InstanceMethod("read", &NativeCuda::Read),
            InstanceMethod("weight", &NativeCuda::Weight),
            InstanceMethod("weightQuantized", &NativeCuda::WeightQuantized),
            InstanceMethod("weightBytes", &NativeCuda::WeightBytes),
            InstanceMethod("kvLayer", &NativeCuda::KvLayer),
            InstanceMethod("kvBytes", &NativeCuda::KvBytes),
            InstanceMethod("constant", &NativeCuda::Constant),
            InstanceMethod("free", &NativeCuda::Free),
            InstanceMethod("dispose", &NativeCuda::Dispose),
            InstanceMethod("setMetaLayout", &NativeCuda::SetMetaLayout),
            InstanceMethod("beginStep", &NativeCuda::BeginStep),
            InstanceMethod("embed", &NativeCuda::Embed),
            InstanceMethod("rmsNorm", &NativeCuda::RmsNorm),
            InstanceMethod("addRmsNorm", &NativeCuda::AddRmsNorm),
            InstanceMethod("matmul", &NativeCuda::Matmul),
            InstanceMethod("add", &NativeCuda::Add),
            InstanceMethod("rope", &NativeCuda::Rope),
            InstanceMethod("headNorm", &NativeCuda::HeadNorm),
            InstanceMethod("gatedAct", &NativeCuda::GatedAct),
            InstanceMethod("writeKv", &NativeCuda::WriteKv),
            InstanceMethod("attention", &NativeCuda::Attention),
            InstanceMethod("gatherRows", &NativeCuda::GatherRows),
            InstanceMethod("copyBlocks", &NativeCuda::CopyBlocks),
            InstanceMethod("sampleGreedy", &NativeCuda::SampleGreedy),
            InstanceMethod("sample", &NativeCuda::Sample),
            InstanceMethod("setGraphMode", &NativeCuda::SetGraphMode),
            InstanceMethod("beginCapture", &NativeCuda::BeginCapture),
            InstanceMethod("endCapture", &NativeCuda::EndCapture),
            InstanceMethod("abortCapture", &NativeCuda::AbortCapture),
            InstanceMethod("replay", &NativeCuda::Replay),
            InstanceMethod("hasGraph", &NativeCuda::HasGraph),
            InstanceMethod("dropGraphs", &NativeCuda::DropGraphs),
            InstanceMethod("graphCount", &NativeCuda::GraphCount),
            InstanceMethod("synchronize", &NativeCuda::Synchronize),
        });
  }

  // new NativeCuda(device, cublasMode, tensorCoreMinRows)
  explicit NativeCuda(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeCuda>(info) {
    guarded(info, [&] {
      ContextOptions o;
      o.device = info.Length() > 0 ? I(info, 0) : 0;
      o.cublasMode = info.Length() > 1 ? I(info, 1) : 0;
      const double tc = info.Length() > 2 ? D(info, 2) : 2;
      o.tensorCoreMinRows = tc >= (double)INT_MAX ? INT_MAX : tc < 1 ? 1 : (int)tc;
      ctx_.reset(new Context(o));
      return 0;
    });
  }

 private:
  std::unique_ptr<Context> ctx_;

  Context& C(const Napi::CallbackInfo& info) {
    if (!ctx_) throw Napi::Error::New(info.Env(), "CudaBackend was disposed");
    return *ctx_;
  }
  DeviceBuffer& Buf(const Napi::CallbackInfo& info, size_t i, size_t need, const char* what) {
    Context& c = C(info);
    const int id = I(info, i);
    if (id < 0 || (size_t)id >= c.bufs.size() || !c.bufs[id]) Fail(info, std::string(what) + ": not a live buffer");
    DeviceBuffer& b = *c.bufs[id];
    if (need > b.size) {
      Fail(info, std::string(what) + ": needs " + std::to_string(need) + " elements, buffer holds " +
                     std::to_string(b.size));
    }
    return b;
  }
  DeviceWeight& Wt(const Napi::CallbackInfo& info, size_t i, const char* what) {
    Context& c = C(info);
    const int id = I(info, i);
    if (id < 0 || (size_t)id >= c.weights.size() || !c.weights[id]) Fail(info, std::string(what) + ": not a live weight");
    return *c.weights[id];
  }
  const float* Vec(const Napi::CallbackInfo& info, size_t i, int len, const char* what) {
    DeviceWeight& w = Wt(info, i, what);
    if (!w.isVector || w.rows < len) {
      Fail(info, std::string(what) + ": expected an f32 vector of at least " + std::to_string(len) + " elements");
    }
    return (const float*)w.data;
  }
  DeviceKv& Kv(const Napi::CallbackInfo& info, size_t i) {
    Context& c = C(info);
    const int id = I(info, i);
    if (id < 0 || (size_t)id >= c.kvs.size() || !c.kvs[id]) Fail(info, "not a live KV layer");
    return *c.kvs[id];
  }
  void Step(const Napi::CallbackInfo& info) {
    if (!C(info).hasStep()) Fail(info, "beginStep() was not called");
  }
  Napi::Value Undef(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }

  Napi::Value Describe(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), C(info).describe()); });
  }
  Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const cudaDeviceProp& p = C(info).props();
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("name", p.name);
      o.Set("major", p.major);
      o.Set("minor", p.minor);
      o.Set("smCount", p.multiProcessorCount);
      o.Set("totalBytes", (double)p.totalGlobalMem);
      o.Set("sharedPerBlockOptin", (double)p.sharedMemPerBlockOptin);
      o.Set("l2Bytes", (double)p.l2CacheSize);
      return o;
    });
  }
  Napi::Value MemInfo(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      size_t f = 0, t = 0;
      C(info).memInfo(&f, &t);
      Napi::Float64Array a = Napi::Float64Array::New(info.Env(), 2);
      a[0] = (double)f;
      a[1] = (double)t;
      return a;
    });
  }
  Napi::Value HasCublas(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), C(info).hasCublas()); });
  }

  Napi::Value Buffer(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const double n = D(info, 0);
      if (!(n >= 1) || n > 4e12) Fail(info, "buffer: size must be a positive number of elements");
      return Napi::Number::New(info.Env(), C(info).newBuffer((size_t)n));
    });
  }
  Napi::Value Write(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Float32Array a = info[1].As<Napi::Float32Array>();
      DeviceBuffer& b = Buf(info, 0, a.ElementLength(), "write");
      C(info).write(b, a.Data(), a.ElementLength());
      return Undef(info);
    });
  }
  Napi::Value Read(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Float32Array a = info[1].As<Napi::Float32Array>();
      DeviceBuffer& b = Buf(info, 0, a.ElementLength(), "read");
      C(info).read(b, a.Data(), a.ElementLength());
      return Undef(info);
    });
  }
  Napi::Value Weight(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
      const int src = I(info, 1), rows = I(info, 2), cols = I(info, 3), storage = I(info, 4);
      const size_t elem = src == SRC_F32 ? 4 : 2;
      if (rows <= 0 || cols < 0 || src < 0 || src > 2 || storage < 0 || storage > 4) Fail(info, "weight: bad arguments");
      if (data.ByteLength() < (size_t)rows * (cols > 0 ? cols : 1) * elem) Fail(info, "weight: data too short");
      return Napi::Number::New(info.Env(), C(info).newWeight(data.Data(), src, rows, cols, storage));
    });
  }
  Napi::Value WeightQuantized(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const QuantizedArgs a = quantized_args(info, "weightQuantized");
      return Napi::Number::New(info.Env(), C(info).newQuantizedWeight(a.kind, a.rows, a.cols, a.q, a.scales));
    });
  }
  Napi::Value WeightBytes(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), (double)Wt(info, 0, "weightBytes").bytes); });
  }
  Napi::Value KvLayer(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const int nb = I(info, 0), bs = I(info, 1), kvh = I(info, 2), hd = I(info, 3), dt = I(info, 4);
      if (nb <= 0 || bs <= 0 || kvh <= 0 || hd <= 0 || hd > MAX_HEAD_DIM || dt < 0 || dt > 3) {
        Fail(info, "kvLayer: bad arguments (headDim must be ≤ 256)");
      }
      return Napi::Number::New(info.Env(), C(info).newKv(nb, bs, kvh, hd, dt));
    });
  }
  Napi::Value KvBytes(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), (double)Kv(info, 0).bytes); });
  }
  Napi::Value Constant(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Float32Array a = info[0].As<Napi::Float32Array>();
      return Napi::Number::New(info.Env(), C(info).newConst(a.Data(), a.ElementLength()));
    });
  }
  Napi::Value Free(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      if (ctx_) ctx_->freeObject(I(info, 0), I(info, 1));
      return Undef(info);
    });
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      ctx_.reset();
      return Undef(info);
    });
  }

  // setMetaLayout(Int32Array [tokenIds, positions, slotMapping, queryStart, seqLens, blockTables,
  //                            blockTableStride, decodeSeqs, tileSeq, tileQ0, capacity])
  Napi::Value SetMetaLayout(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Int32Array a = info[0].As<Napi::Int32Array>();
      if (a.ElementLength() < 11) Fail(info, "setMetaLayout: expected 11 ints");
      MetaLayout l{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]};
      if (l.capacity <= 0) Fail(info, "setMetaLayout: bad capacity");
      for (int v : {l.tokenIds, l.positions, l.slotMapping, l.queryStart, l.seqLens, l.blockTables, l.decodeSeqs,
                    l.tileSeq, l.tileQ0}) {
        if (v < 0 || v > l.capacity) Fail(info, "setMetaLayout: section outside the buffer");
      }
      C(info).setMetaLayout(l);
      return Undef(info);
    });
  }
  // beginStep(packed Int32Array, ints, numTokens, numSeqs, numDecode, numTiles)
  Napi::Value BeginStep(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Int32Array a = info[0].As<Napi::Int32Array>();
      const int ints = I(info, 1);
      if (ints < 0 || (size_t)ints > a.ElementLength()) Fail(info, "beginStep: bad length");
      C(info).beginStep(a.Data(), ints, I(info, 2), I(info, 3), I(info, 4), I(info, 5));
      return Undef(info);
    });
  }

  Napi::Value Embed(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Step(info);
      Context& c = C(info);
      DeviceWeight& t = Wt(info, 1, "embed table");
      if (t.isVector) Fail(info, "embed: table must be a matrix");
      DeviceBuffer& o = Buf(info, 0, (size_t)c.numTokens() * t.cols, "embed out");
      launch_embed(c.stream, o.ptr, t.view, c.step().tokenIds, c.numTokens(), F(info, 2));
      c.afterOp("embed");
      return Undef(info);
    });
  }
  Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const int rows = I(info, 3), dim = I(info, 4);
      DeviceBuffer& o = Buf(info, 0, (size_t)rows * dim, "rmsNorm out");
      DeviceBuffer& x = Buf(info, 1, (size_t)rows * dim, "rmsNorm x");
      const float* w = Vec(info, 2, dim, "rmsNorm weight");
      launch_rms_norm(C(info).stream, o.ptr, x.ptr, w, rows, dim, F(info, 5), B(info, 6));
      C(info).afterOp("rmsNorm");
      return Undef(info);
    });
  }
  Napi::Value AddRmsNorm(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const int rows = I(info, 4), dim = I(info, 5);
      const size_t n = (size_t)rows * dim;
      DeviceBuffer& o = Buf(info, 0, n, "addRmsNorm out");
      DeviceBuffer& r = Buf(info, 1, n, "addRmsNorm residual");
      DeviceBuffer& x = Buf(info, 2, n, "addRmsNorm x");
      const float* w = Vec(info, 3, dim, "addRmsNorm weight");
      launch_add_rms_norm(C(info).stream, o.ptr, r.ptr, x.ptr, w, rows, dim, F(info, 6), B(info, 7));
      C(info).afterOp("addRmsNorm");
      return Undef(info);
    });
  }
  Napi::Value Matmul(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      DeviceWeight& w = Wt(info, 2, "matmul weight");
      if (w.isVector) Fail(info, "matmul: weight must be a matrix");
      const int rows = I(info, 4);
      DeviceBuffer& o = Buf(info, 0, (size_t)rows * w.rows, "matmul out");
      DeviceBuffer& x = Buf(info, 1, (size_t)rows * w.cols, "matmul x");
      const float* bias = I(info, 3) >= 0 ? Vec(info, 3, w.rows, "matmul bias") : nullptr;
      C(info).matmul(o.ptr, x.ptr, w, bias, rows);
      C(info).afterOp("matmul");
      return Undef(info);
    });
  }
  Napi::Value Add(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const double n = D(info, 2);
      DeviceBuffer& a = Buf(info, 0, (size_t)n, "add a");
      DeviceBuffer& b = Buf(info, 1, (size_t)n, "add b");
      launch_add(C(info).stream, a.ptr, b.ptr, (long)n);
      C(info).afterOp("add");
      return Undef(info);
    });
  }
  // rope(x, rows, rowStride, offset, numHeads, headDim, rotaryDim, invFreqConst, attentionFactor)
  Napi::Value Rope(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Step(info);
      Context& c = C(info);
      const int rows = I(info, 1), stride = I(info, 2), off = I(info, 3), heads = I(info, 4), hd = I(info, 5),
                rot = I(info, 6), cid = I(info, 7);
      if (rows > c.numTokens()) Fail(info, "rope: more rows than the step has tokens");
      if (rot <= 0 || rot % 2 || rot > hd) Fail(info, "rope: rotaryDim must be even and ≤ headDim");
      DeviceBuffer& x = Buf(info, 0, Need(rows, stride, off, (long)heads * hd), "rope x");
      if (cid < 0 || (size_t)cid >= c.consts.size() || !c.consts[cid] || c.consts[cid]->size < (size_t)rot / 2) {
        Fail(info, "rope: invFreq constant missing or too short");
      }
      launch_rope(c.stream, x.ptr, rows, stride, off, heads, hd, rot, c.consts[cid]->ptr, F(info, 8),
                  c.step().positions);
      c.afterOp("rope");
      return Undef(info);
    });
  }
  Napi::Value HeadNorm(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const int rows = I(info, 1), stride = I(info, 2), off = I(info, 3), heads = I(info, 4), hd = I(info, 5);
      DeviceBuffer& x = Buf(info, 0, Need(rows, stride, off, (long)heads * hd), "headNorm x");
      const float* w = Vec(info, 6, hd, "headNorm weight");
      launch_head_norm(C(info).stream, x.ptr, rows, stride, off, heads, hd, w, F(info, 7), B(info, 8));
      C(info).afterOp("headNorm");
      return Undef(info);
    });
  }
  Napi::Value GatedAct(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const int rows = I(info, 2), inter = I(info, 3);
      DeviceBuffer& o = Buf(info, 0, (size_t)rows * inter, "gatedAct out");
      DeviceBuffer& g = Buf(info, 1, (size_t)rows * 2 * inter, "gatedAct gateUp");
      launch_gated_act(C(info).stream, o.ptr, g.ptr, rows, inter, I(info, 4));
      C(info).afterOp("gatedAct");
      return Undef(info);
    });
  }
  Napi::Value WriteKv(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Step(info);
      Context& c = C(info);
      DeviceKv& kv = Kv(info, 0);
      const int stride = I(info, 2), kOff = I(info, 3), vOff = I(info, 4);
      const long width = (long)kv.view.numKvHeads * kv.view.headDim;
      const long off = kOff > vOff ? kOff : vOff;
      DeviceBuffer& q = Buf(info, 1, Need(c.numTokens(), stride, off, width), "writeKv qkv");
      launch_write_kv(c.stream, kv.view, q.ptr, stride, kOff, vOff, c.step().slotMapping, c.numTokens());
      c.afterOp("writeKv");
      return Undef(info);
    });
  }
  // attention(out, qkv, rowStride, kv, numHeads, numKvHeads, headDim, scale, window, softcap, splits, partition)
  Napi::Value Attention(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Step(info);
      Context& c = C(info);
      DeviceKv& kv = Kv(info, 3);
      AttnArgs a{};
      a.rowStride = I(info, 2);
      a.kv = kv.view;
      a.numHeads = I(info, 4);
      a.numKvHeads = I(info, 5);
      a.headDim = I(info, 6);
      a.scale = F(info, 7);
      a.window = I(info, 8);
      a.softcap = F(info, 9);
      if (a.numKvHeads != kv.view.numKvHeads || a.headDim != kv.view.headDim || a.numHeads % a.numKvHeads != 0) {
        Fail(info, "attention: heads/headDim do not match the KV layer");
      }
      const int T = c.numTokens();
      a.out = Buf(info, 0, (size_t)T * a.numHeads * a.headDim, "attention out").ptr;
      a.qkv = Buf(info, 1, Need(T, a.rowStride, 0, (long)a.numHeads * a.headDim), "attention qkv").ptr;
      a.step = c.step();
      c.attention(a, I(info, 10), I(info, 11));
      c.afterOp("attention");
      return Undef(info);
    });
  }
  Napi::Value GatherRows(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Int32Array idx = info[2].As<Napi::Int32Array>();
      const int n = (int)idx.ElementLength(), dim = I(info, 3);
      DeviceBuffer& x = Buf(info, 1, 0, "gatherRows x");
      for (int i = 0; i < n; i++) {
        if (idx[i] < 0 || (size_t)(idx[i] + 1) * dim > x.size) Fail(info, "gatherRows: row index out of range");
      }
      DeviceBuffer& o = Buf(info, 0, (size_t)n * dim, "gatherRows out");
      C(info).gatherRows(o.ptr, x.ptr, idx.Data(), n, dim);
      C(info).afterOp("gatherRows");
      return Undef(info);
    });
  }
  // copyBlocks(kvIds Int32Array, src Int32Array, dst Int32Array)
  Napi::Value CopyBlocks(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Int32Array ids = info[0].As<Napi::Int32Array>();
      Napi::Int32Array src = info[1].As<Napi::Int32Array>(), dst = info[2].As<Napi::Int32Array>();
      if (src.ElementLength() != dst.ElementLength()) Fail(info, "copyBlocks: src and dst differ in length");
      Context& c = C(info);
      std::vector<DeviceKv*> layers;
      for (size_t i = 0; i < ids.ElementLength(); i++) {
        const int id = ids[i];
        if (id < 0 || (size_t)id >= c.kvs.size() || !c.kvs[id]) Fail(info, "copyBlocks: not a live KV layer");
        DeviceKv* k = c.kvs[id].get();
        for (size_t j = 0; j < src.ElementLength(); j++) {
          if (src[j] < 0 || dst[j] < 0 || src[j] >= k->view.numBlocks || dst[j] >= k->view.numBlocks) {
            Fail(info, "copyBlocks: block id out of range");
          }
        }
        layers.push_back(k);
      }
      c.copyBlocks(layers, src.Data(), dst.Data(), (int)src.ElementLength());
      c.afterOp("copyBlocks");
      return Undef(info);
    });
  }
  // sampleGreedy(logits, rows, vocab, softcap, outIds Int32Array, outLogprob Float32Array | null)
  Napi::Value SampleGreedy(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const int rows = I(info, 1), vocab = I(info, 2);
      DeviceBuffer& l = Buf(info, 0, (size_t)rows * vocab, "sampleGreedy logits");
      Napi::Int32Array ids = info[4].As<Napi::Int32Array>();
      const bool lp = info[5].IsTypedArray();
      if (ids.ElementLength() < (size_t)rows) Fail(info, "sampleGreedy: outIds too short");
      float* lpOut = nullptr;
      if (lp) {
        Napi::Float32Array a = info[5].As<Napi::Float32Array>();
        if (a.ElementLength() < (size_t)rows) Fail(info, "sampleGreedy: outLogprobs too short");
        lpOut = a.Data();
      }
      C(info).sample(l.ptr, rows, vocab, F(info, 3), nullptr, nullptr, ids.Data(), lpOut);
      return Undef(info);
    });
  }
  // sample(logits, rows, vocab, softcap, params Float32Array [T|topP|minP|u] × rows, topK Int32Array, outIds, outLogprob|null)
  Napi::Value Sample(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const int rows = I(info, 1), vocab = I(info, 2);
      DeviceBuffer& l = Buf(info, 0, (size_t)rows * vocab, "sample logits");
      Napi::Float32Array params = info[4].As<Napi::Float32Array>();
      Napi::Int32Array topK = info[5].As<Napi::Int32Array>();
      Napi::Int32Array ids = info[6].As<Napi::Int32Array>();
      if (params.ElementLength() < (size_t)rows * 4 || topK.ElementLength() < (size_t)rows ||
          ids.ElementLength() < (size_t)rows) {
        Fail(info, "sample: parameter arrays too short");
      }
      float* lpOut = nullptr;
      if (info[7].IsTypedArray()) {
        Napi::Float32Array a = info[7].As<Napi::Float32Array>();
        if (a.ElementLength() < (size_t)rows) Fail(info, "sample: outLogprobs too short");
        lpOut = a.Data();
      }
      C(info).sample(l.ptr, rows, vocab, F(info, 3), params.Data(), topK.Data(), ids.Data(), lpOut);
      return Undef(info);
    });
  }

  Napi::Value SetGraphMode(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      C(info).setGraphMode(B(info, 0));
      return Undef(info);
    });
  }
  Napi::Value BeginCapture(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      C(info).beginCapture();
      return Undef(info);
    });
  }
  Napi::Value EndCapture(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      C(info).endCapture(LL(info, 0));
      return Undef(info);
    });
  }
  Napi::Value AbortCapture(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      if (ctx_) ctx_->abortCapture();
      return Undef(info);
    });
  }
  Napi::Value Replay(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      C(info).replay(LL(info, 0));
      C(info).afterOp("replay");
      return Undef(info);
    });
  }
  Napi::Value HasGraph(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), C(info).hasGraph(LL(info, 0))); });
  }
  Napi::Value DropGraphs(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      C(info).dropGraphs();
      return Undef(info);
    });
  }
  Napi::Value GraphCount(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), C(info).graphCount()); });
  }
  Napi::Value Synchronize(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      C(info).synchronize();
      return Undef(info);
    });
  }
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeCuda", NativeCuda::Define(env));
  export_host_functions(env, exports);
  return exports;
}

}  // namespace
}  // namespace loom_cuda

static Napi::Object InitLoomCuda(Napi::Env env, Napi::Object exports) { return loom_cuda::Init(env, exports); }

NODE_API_MODULE(loom_cuda, InitLoomCuda)
