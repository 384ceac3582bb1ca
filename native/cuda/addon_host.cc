// The CUDA addon's module functions that need no GPU (deviceUnavailableReason, cublasStatus, packWeight,
// packQuantized, buildInfo): they let the tests check loading, cuBLAS discovery and the host-side weight
// packing on machines without one.
#include <napi.h>

#include <cstring>

#include "addon_args.h"
#include "context.h"
#include "host_pack.h"

namespace loom_cuda {
namespace {

Napi::Value DeviceUnavailableReason(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), device_unavailable_reason(info.Length() > 0 ? I(info, 0) : 0));
  });
}

Napi::Value CublasStatus(const Napi::CallbackInfo& info) {
  const Cublas& c = load_cublas();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("ok", c.ok());
  o.Set("path", c.path);
  o.Set("error", c.error);
  return o;
}

Napi::Value PackedToJs(Napi::Env env, const PackedWeight& p) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Uint8Array d = Napi::Uint8Array::New(env, p.data.size());
  std::memcpy(d.Data(), p.data.data(), p.data.size());
  Napi::Float32Array s = Napi::Float32Array::New(env, p.scales.size());
  if (!p.scales.empty()) std::memcpy(s.Data(), p.scales.data(), p.scales.size() * 4);
  o.Set("data", d);
  o.Set("scales", s);
  o.Set("kp", p.Kp);
  return o;
}

// packWeight(data Uint8Array, srcDtype, rows, cols, storage) → { data, scales, kp }
Napi::Value PackWeight(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
    const int src = I(info, 1), rows = I(info, 2), cols = I(info, 3), storage = I(info, 4);
    const size_t elem = src == SRC_F32 ? 4 : 2;
    if (rows <= 0 || cols < 0 || data.ByteLength() < (size_t)rows * (cols > 0 ? cols : 1) * elem) {
      Fail(info, "packWeight: bad arguments");
    }
    return PackedToJs(info.Env(), pack_weight(data.Data(), src, rows, cols, storage));
  });
}

// packQuantized(kind, rows, cols, q, scales) → { data, scales, kp }
Napi::Value PackQuantized(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const QuantizedArgs a = quantized_args(info, "packQuantized");
    return PackedToJs(info.Env(), pack_quantized(a.kind, a.rows, a.cols, a.q, a.scales));
  });
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("cudaRuntime", CUDART_VERSION);
  o.Set("archs", LOOM_CUDA_ARCHS);
  return o;
}

}  // namespace

void export_host_functions(Napi::Env env, Napi::Object exports) {
  exports.Set("deviceUnavailableReason", Napi::Function::New(env, DeviceUnavailableReason));
  exports.Set("cublasStatus", Napi::Function::New(env, CublasStatus));
  exports.Set("packWeight", Napi::Function::New(env, PackWeight));
  exports.Set("packQuantized", Napi::Function::New(env, PackQuantized));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
}

}  // namespace loom_cuda
