// cuBLAS without a link-time dependency: the few entry points the backend uses are declared here (enums as
// ints, values from cublas_api.h / library_types.h) and resolved with dlopen/dlsym at run time, so the addon
// builds on machines that have nvcc but no cuBLAS, and reports a clear error where cuBLAS is missing.
#pragma once

#include <cuda_runtime.h>

#include <string>

namespace loom_cuda {

// cublas_api.h / library_types.h values.
constexpr int CUBLAS_STATUS_SUCCESS = 0;
constexpr int CUBLAS_OP_N = 0;
constexpr int CUBLAS_OP_T = 1;
constexpr int CUDA_R_32F = 0;
constexpr int CUDA_R_16F = 2;
constexpr int CUDA_R_16BF = 14;
constexpr int CUBLAS_COMPUTE_32F = 68;
constexpr int CUBLAS_GEMM_DEFAULT = -1;

using cublasHandle = void*;

/** The resolved library; `ok()` false means `error` says why (tried names and dlerror). */
struct Cublas {
  using CreateFn = int (*)(cublasHandle*);
  using DestroyFn = int (*)(cublasHandle);
  using SetStreamFn = int (*)(cublasHandle, cudaStream_t);
  using SetWorkspaceFn = int (*)(cublasHandle, void*, size_t);
  using GetVersionFn = int (*)(cublasHandle, int*);
  using StatusStringFn = const char* (*)(int);
  using GemmExFn = int (*)(cublasHandle, int transa, int transb, int m, int n, int k, const void* alpha,
                           const void* A, int Atype, int lda, const void* B, int Btype, int ldb, const void* beta,
                           void* C, int Ctype, int ldc, int computeType, int algo);

  void* lib = nullptr;
  void* libLt = nullptr;
  std::string path;
  std::string error;
  CreateFn create = nullptr;
  DestroyFn destroy = nullptr;
  SetStreamFn setStream = nullptr;
  SetWorkspaceFn setWorkspace = nullptr;  // optional (cublasSetWorkspace_v2)
  GetVersionFn getVersion = nullptr;      // optional
  StatusStringFn statusString = nullptr;  // optional
  GemmExFn gemmEx = nullptr;

  bool ok() const { return gemmEx != nullptr; }
  std::string status(int code) const;
};

/**
 * Loads cuBLAS once per process. Order: $LOOM_CUBLAS_PATH (a file or a directory), then the sonames
 * libcublas.so.13, .so.12, .so through the loader's search path, then the same names under $CUDA_HOME,
 * $CUDA_PATH, /usr/local/cuda (lib64, targets/x86_64-linux/lib). libcublasLt is loaded from the same
 * directory first so that libcublas finds it.
 */
const Cublas& load_cublas();

}  // namespace loom_cuda
