{
  # The native CPU backend (src/backends/cpu). The hot kernels are compiled once per ISA level, each in its
  # own static library with its own flags (kernels_<isa>.cc: scalar, avx2, avx512, amx = avx512 + AMX tile
  # GEMM); the addon picks one at load with __builtin_cpu_supports/cpuid (native/cpu/dispatch.cc), so one
  # build runs on any x86-64 CPU (and elsewhere with the scalar kernels only).
  "target_defaults": {
    "cflags": ["-fPIC", "-O3", "-ffp-contract=off", "-fno-math-errno"],
    "cflags_cc": ["-std=c++17", "-fexceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "OTHER_CFLAGS": ["-O3", "-ffp-contract=off"]
    },
    "msvs_settings": {"VCCLCompilerTool": {"ExceptionHandling": 1}}
  },
  "targets": [
    {
      "target_name": "loom_cpu_scalar",
      "type": "static_library",
      "sources": ["native/cpu/kernels_scalar.cc"]
    },
    {
      "target_name": "loom_cpu_avx2",
      "type": "static_library",
      "sources": ["native/cpu/kernels_avx2.cc"],
      "conditions": [
        ["target_arch=='x64'", {
          "cflags": ["-mavx2", "-mfma", "-mf16c"],
          "xcode_settings": {"OTHER_CFLAGS": ["-mavx2", "-mfma", "-mf16c"]}
        }]
      ]
    },
    {
      "target_name": "loom_cpu_avx512",
      "type": "static_library",
      "sources": ["native/cpu/kernels_avx512.cc"],
      "conditions": [
        ["target_arch=='x64'", {
          "cflags": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-mf16c",
                     "-Wno-uninitialized", "-Wno-maybe-uninitialized"],
          "xcode_settings": {
            "OTHER_CFLAGS": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-mf16c"]
          }
        }]
      ]
    },
    {
      "target_name": "loom_cpu_amx",
      "type": "static_library",
      "sources": ["native/cpu/kernels_amx.cc"],
      "conditions": [
        ["target_arch=='x64'", {
          "cflags": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-mf16c",
                     "-mavx512bf16", "-mamx-tile", "-mamx-bf16", "-Wno-uninitialized", "-Wno-maybe-uninitialized"],
          "xcode_settings": {
            "OTHER_CFLAGS": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-mf16c",
                             "-mavx512bf16", "-mamx-tile", "-mamx-bf16"]
          }
        }]
      ]
    },
    {
      "target_name": "loom_cpu",
      "dependencies": ["loom_cpu_scalar", "loom_cpu_avx2", "loom_cpu_avx512", "loom_cpu_amx"],
      "sources": [
        "native/cpu/addon.cc",
        "native/cpu/attention.cc",
        "native/cpu/context.cc",
        "native/cpu/dispatch.cc",
        "native/cpu/kv.cc",
        "native/cpu/matmul.cc",
        "native/cpu/norm_rope_act.cc",
        "native/cpu/quant.cc",
        "native/cpu/thread_pool.cc",
        "native/cpu/weight_arena.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: a call that returns into a worker thread being terminated
      # cannot throw into JS; without it node-addon-api rethrows that as a C++ exception and aborts the process.
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED",
                  "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "libraries": ["-lpthread"]
    }
  ]
}
