// Run-time loading of cuBLAS (see cublas_loader.h).
#include "cublas_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace loom_cuda {

#ifndef LOOM_CUDA_EMULATION
namespace {

const char* const kNames[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
const char* const kLtNames[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string dir_of(const std::string& p) {
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? std::string() : p.substr(0, slash);
}

/** Tries to open cuBLAS at `dir` (empty: the loader's search path); Lt first, from the same place. */
bool try_open(Cublas& c, const std::string& dir, std::string& tried) {
  for (int i = 0; i < 3; i++) {
    const std::string name = dir.empty() ? kNames[i] : dir + "/" + kNames[i];
    const std::string lt = dir.empty() ? kLtNames[i] : dir + "/" + kLtNames[i];
    void* hLt = dlopen(lt.c_str(), RTLD_NOW | RTLD_GLOBAL);
    void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h) {
      c.lib = h;
      c.libLt = hLt;
      c.path = name;
      return true;
    }
    if (hLt) dlclose(hLt);
    const char* err = dlerror();
    if (!tried.empty()) tried += "; ";
    tried += name;
    if (err && std::string(err).find("No such file") == std::string::npos) tried += std::string(" (") + err + ")";
  }
  return false;
}

Cublas load() {
  Cublas c;
  std::string tried;
  std::vector<std::string> dirs;
  bool found = false;
  if (const char* env = std::getenv("LOOM_CUBLAS_PATH")) {
    std::string p = env;
    if (!p.empty() && !is_dir(p)) {
      // A file: open it directly (its directory for Lt).
      const std::string d = dir_of(p);
      for (const char* lt : kLtNames) {
        if (dlopen((d.empty() ? std::string(lt) : d + "/" + lt).c_str(), RTLD_NOW | RTLD_GLOBAL)) break;
      }
      c.lib = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (c.lib) {
        c.path = p;
        found = true;
      } else {
        const char* err = dlerror();
        tried = p + (err ? std::string(" (") + err + ")" : "");
      }
    } else if (!p.empty()) {
      dirs.push_back(p);
    }
  }
  if (!found) {
    dirs.push_back("");
    for (const char* var : {"CUDA_HOME", "CUDA_PATH"}) {
      if (const char* e = std::getenv(var)) {
        dirs.push_back(std::string(e) + "/lib64");
        dirs.push_back(std::string(e) + "/targets/x86_64-linux/lib");
      }
    }
    dirs.push_back("/usr/local/cuda/lib64");
    dirs.push_back("/usr/local/cuda/targets/x86_64-linux/lib");
    for (const std::string& d : dirs) {
      if (!d.empty() && !is_dir(d)) continue;
      if (try_open(c, d, tried)) {
        found = true;
        break;
      }
    }
  }
  if (!found) {
    c.error = "cuBLAS not found (tried " + tried + "); install the CUDA toolkit's cuBLAS or set LOOM_CUBLAS_PATH";
    return c;
  }
  auto sym = [&](const char* name) { return dlsym(c.lib, name); };
  c.create = (Cublas::CreateFn)sym("cublasCreate_v2");
  c.destroy = (Cublas::DestroyFn)sym("cublasDestroy_v2");
  c.setStream = (Cublas::SetStreamFn)sym("cublasSetStream_v2");
  c.setWorkspace = (Cublas::SetWorkspaceFn)sym("cublasSetWorkspace_v2");
  c.getVersion = (Cublas::GetVersionFn)sym("cublasGetVersion_v2");
  c.statusString = (Cublas::StatusStringFn)sym("cublasGetStatusString");
  Cublas::GemmExFn gemm = (Cublas::GemmExFn)sym("cublasGemmEx");
  if (!c.create || !c.destroy || !c.setStream || !gemm) {
    c.error = c.path + " lacks cublasCreate_v2/cublasSetStream_v2/cublasGemmEx";
    return c;
  }
  c.gemmEx = gemm;
  return c;
}

}  // namespace
#endif

std::string Cublas::status(int code) const {
  if (statusString) {
    const char* s = statusString(code);
    if (s) return s;
  }
  return "cuBLAS status " + std::to_string(code);
}

#ifdef LOOM_CUDA_EMULATION
// The emulation build (native/cuda/emu) gets a CPU cuBLAS with exactly the GemmEx semantics the backend
// relies on (column-major, op T/N, bf16 inputs, f32 output, f32 compute), so the call's argument order,
// leading dimensions and transposes are tested too.
namespace {
struct EmuBlas {
  cudaStream_t stream = nullptr;
};
int emu_create(cublasHandle* h) {
  *h = new EmuBlas();
  return CUBLAS_STATUS_SUCCESS;
}
int emu_destroy(cublasHandle h) {
  delete (EmuBlas*)h;
  return CUBLAS_STATUS_SUCCESS;
}
int emu_set_stream(cublasHandle h, cudaStream_t s) {
  ((EmuBlas*)h)->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
int emu_set_workspace(cublasHandle, void*, size_t) { return CUBLAS_STATUS_SUCCESS; }
int emu_version(cublasHandle, int* v) {
  *v = 130000;
  return CUBLAS_STATUS_SUCCESS;
}
float bf16_at(const void* p, size_t i) {
  uint32_t u = (uint32_t)((const uint16_t*)p)[i] << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
int emu_gemm(cublasHandle h, int ta, int tb, int m, int n, int k, const void* alpha, const void* A, int at, int lda,
             const void* B, int bt, int ldb, const void* beta, void* C, int ct, int ldc, int compute, int) {
  if (at != CUDA_R_16BF || bt != CUDA_R_16BF || ct != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F) return 7;
  if (m < 0 || n < 0 || k < 0 || ldc < m) return 7;
  if (lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n)) return 7;
  const float al = *(const float*)alpha, be = *(const float*)beta;
  emu::enqueue(((EmuBlas*)h)->stream, [=] {
    float* c = (float*)C;
    for (int j = 0; j < n; j++) {
      for (int i = 0; i < m; i++) {
        double acc = 0;
        for (int l = 0; l < k; l++) {
          const float a = ta == CUBLAS_OP_N ? bf16_at(A, i + (size_t)l * lda) : bf16_at(A, l + (size_t)i * lda);
          const float b = tb == CUBLAS_OP_N ? bf16_at(B, l + (size_t)j * ldb) : bf16_at(B, j + (size_t)l * ldb);
          acc += (double)a * b;
        }
        float& out = c[i + (size_t)j * ldc];
        out = be == 0.0f ? (float)(al * acc) : (float)(al * acc + be * out);
      }
    }
  });
  return CUBLAS_STATUS_SUCCESS;
}
}  // namespace

const Cublas& load_cublas() {
  static Cublas c = [] {
    Cublas e;
    e.path = "emulated cuBLAS (CPU)";
    e.create = emu_create;
    e.destroy = emu_destroy;
    e.setStream = emu_set_stream;
    e.setWorkspace = emu_set_workspace;
    e.getVersion = emu_version;
    e.gemmEx = emu_gemm;
    if (const char* off = std::getenv("LOOM_EMU_NO_CUBLAS")) {
      if (off[0] == '1') {
        e = Cublas();
        e.error = "cuBLAS not found (LOOM_EMU_NO_CUBLAS=1)";
      }
    }
    return e;
  }();
  return c;
}
#else
const Cublas& load_cublas() {
  static std::once_flag once;
  static Cublas c;
  std::call_once(once, [] { c = load(); });
  return c;
}
#endif

}  // namespace loom_cuda
