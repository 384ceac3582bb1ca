// Argument helpers of the CUDA addon's Node-API glue (addon.cc, addon_host.cc): numbers out of a
// CallbackInfo, one-line RangeErrors, C++ exceptions turned into JS errors, and buffer extents.
#pragma once
#include <napi.h>

#include <exception>
#include <string>

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

/** Adds the module functions that need no GPU (addon_host.cc) to `exports`. */
void export_host_functions(Napi::Env env, Napi::Object exports);

}  // namespace loom_cuda
