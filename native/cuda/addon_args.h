// Argument helpers of the CUDA addon's Node-API glue (addon.cc, addon_host.cc): numbers out of a
// CallbackInfo, one-line RangeErrors, C++ exceptions turned into JS errors, and buffer extents.
#pragma once
#include <napi.h>

#include <cstdint>
#include <exception>
#include <string>

#include "common.h"

namespace loom_cuda {

template <typename F>
auto guarded(const Napi::CallbackInfo& info, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

inline int I(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }
inline double D(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }
inline float F(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().FloatValue(); }
inline bool B(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }
inline long long LL(const Napi::CallbackInfo& info, size_t i) { return (long long)info[i].As<Napi::Number>().Int64Value(); }
[[noreturn]] inline void Fail(const Napi::CallbackInfo& info, const std::string& msg) {
  throw Napi::RangeError::New(info.Env(), msg);
}
inline size_t Need(long rows, long stride, long offset, long width) {
  return rows <= 0 ? 0 : (size_t)((rows - 1) * stride + offset + width);
}

/** Arguments (kind, rows, cols, q, scales) of weightQuantized and packQuantized, checked once for both. */
struct QuantizedArgs {
  int kind, rows, cols;
  const void* q;
  const float* scales;
};
inline QuantizedArgs quantized_args(const Napi::CallbackInfo& info, const std::string& what) {
  const int kind = I(info, 0), rows = I(info, 1), cols = I(info, 2);
  if ((kind != ST_INT8 && kind != ST_INT4) || rows <= 0 || cols <= 0) Fail(info, what + ": bad arguments");
  Napi::TypedArray q = info[3].As<Napi::TypedArray>();
  Napi::Float32Array scales = info[4].As<Napi::Float32Array>();
  const size_t G = (size_t)(cols + QGROUP - 1) / QGROUP;
  if (q.ByteLength() < (size_t)rows * cols || scales.ElementLength() < (size_t)rows * G * (kind == ST_INT4 ? 2 : 1))
    Fail(info, what + ": data too short");
  return {kind, rows, cols, (const uint8_t*)q.ArrayBuffer().Data() + q.ByteOffset(), scales.Data()};
}

/** Adds the module functions that need no GPU (addon_host.cc) to `exports`. */
void export_host_functions(Napi::Env env, Napi::Object exports);

}  // namespace loom_cuda
