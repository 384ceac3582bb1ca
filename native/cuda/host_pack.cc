// Weight packing on the host (see host_pack.h). Compiled without FMA contraction concerns: every value is
// produced by a single rounding (a division in double, then a conversion), as quant.ts does.
#include "host_pack.h"

#include <cmath>
#include <cstring>
#include <thread>

#include "../common/quant_spec.h"
#include "common.h"

namespace loom_cuda {

namespace {

using loom_spec::quantize_int4_group;
using loom_spec::quantize_int8_group;

float read_src(const uint8_t* src, int dtype, size_t i) {
  if (dtype == SRC_F32) {
    float f;
    std::memcpy(&f, src + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, src + 2 * i, 2);
  return dtype == SRC_BF16 ? bf16_to_f32_host(h) : f16_to_f32_host(h);
}

/** Runs fn(r0, r1) over [0, rows) on up to 16 threads (one when the matrix is small). */
template <typename Fn>
void parallel_rows(int rows, long work, Fn fn) {
  unsigned hw = std::thread::hardware_concurrency();
  int nt = (int)(hw == 0 ? 1 : hw > 16 ? 16 : hw);
  if (work < (1L << 20) || rows < 2 * nt) nt = 1;
  if (nt == 1) {
    fn(0, rows);
    return;
  }
  std::vector<std::thread> ts;
  const int per = (rows + nt - 1) / nt;
  for (int t = 0; t < nt; t++) {
    const int r0 = t * per, r1 = r0 + per < rows ? r0 + per : rows;
    if (r0 >= r1) break;
    ts.emplace_back(fn, r0, r1);
  }
  for (auto& t : ts) t.join();
}

}  // namespace

float bf16_to_f32_host(uint16_t h) { return loom_spec::bf16_to_f32(h); }
uint16_t f32_to_bf16_host(float x) { return loom_spec::f32_to_bf16(x); }
float f16_to_f32_host(uint16_t h) { return loom_spec::f16_to_f32(h); }
uint16_t f32_to_f16_host(float x) { return loom_spec::f32_to_f16(x); }

PackedWeight pack_weight(const uint8_t* src, int srcDtype, int rows, int cols, int storage) {
  PackedWeight p;
  p.rows = rows;
  p.cols = cols;
  if (cols <= 0) {
    p.data.resize((size_t)rows * 4);
    float* d = (float*)p.data.data();
    for (int i = 0; i < rows; i++) d[i] = read_src(src, srcDtype, (size_t)i);
    return p;
  }
  const int K = cols, Kp = round_up(cols, QGROUP), G = Kp / QGROUP;
  p.Kp = Kp;
  switch (storage) {
    case ST_F32: p.data.assign((size_t)rows * Kp * 4, 0); break;
    case ST_F16:
    case ST_BF16: p.data.assign((size_t)rows * Kp * 2, 0); break;
    case ST_INT8:
      p.data.assign((size_t)rows * Kp, 0);
      p.scales.assign((size_t)rows * G, 0.0f);
      break;
    case ST_INT4:
      p.data.assign((size_t)rows * Kp / 2, 0);
      p.scales.assign((size_t)rows * G * 2, 0.0f);
      break;
    default: throw CudaError("unknown storage " + std::to_string(storage));
  }
  // Fast path: a bf16 checkpoint stored as bf16 (the common case) is a row copy.
  if (storage == ST_BF16 && srcDtype == SRC_BF16) {
    for (int r = 0; r < rows; r++) std::memcpy(p.data.data() + (size_t)r * Kp * 2, src + (size_t)r * K * 2, (size_t)K * 2);
    return p;
  }
  uint8_t* out = p.data.data();
  float* scales = p.scales.data();
  parallel_rows(rows, (long)rows * K, [&](int r0, int r1) {
    std::vector<float> tmp(Kp);
    for (int r = r0; r < r1; r++) {
      for (int k = 0; k < K; k++) tmp[k] = read_src(src, srcDtype, (size_t)r * K + k);
      for (int k = K; k < Kp; k++) tmp[k] = 0.0f;
      switch (storage) {
        case ST_F32: std::memcpy(out + (size_t)r * Kp * 4, tmp.data(), (size_t)Kp * 4); break;
        case ST_F16: {
          uint16_t* d = (uint16_t*)out + (size_t)r * Kp;
          for (int k = 0; k < Kp; k++) d[k] = f32_to_f16_host(tmp[k]);
          break;
        }
        case ST_BF16: {
          uint16_t* d = (uint16_t*)out + (size_t)r * Kp;
          for (int k = 0; k < Kp; k++) d[k] = f32_to_bf16_host(tmp[k]);
          break;
        }
        case ST_INT8:
          for (int g = 0; g < G; g++) {
            const int n = K - g * QGROUP < QGROUP ? K - g * QGROUP : QGROUP;
            scales[(size_t)r * G + g] =
                quantize_int8_group(tmp.data() + g * QGROUP, n, (int8_t*)out + (size_t)r * Kp + g * QGROUP, true);
          }
          break;
        case ST_INT4:
          for (int g = 0; g < G; g++) {
            const int n = K - g * QGROUP < QGROUP ? K - g * QGROUP : QGROUP;
            uint8_t codes[QGROUP];
            quantize_int4_group(tmp.data() + g * QGROUP, n, codes, &scales[2 * ((size_t)r * G + g)],
                                &scales[2 * ((size_t)r * G + g) + 1]);
            uint8_t* b = out + (size_t)r * (Kp / 2) + g * 16;
            for (int j = 0; j < 16; j++) b[j] = (uint8_t)(codes[j] | (codes[j + 16] << 4));
          }
          break;
      }
    }
  });
  return p;
}

PackedWeight pack_quantized(int kind, int rows, int cols, const void* q, const float* scales) {
  PackedWeight p;
  const int K = cols, Kp = round_up(cols, QGROUP), G = Kp / QGROUP;
  p.rows = rows;
  p.cols = cols;
  p.Kp = Kp;
  if (kind == ST_INT8) {
    p.data.assign((size_t)rows * Kp, 0);
    p.scales.assign(scales, scales + (size_t)rows * G);
    for (int r = 0; r < rows; r++) std::memcpy(p.data.data() + (size_t)r * Kp, (const int8_t*)q + (size_t)r * K, K);
  } else if (kind == ST_INT4) {
    p.data.assign((size_t)rows * Kp / 2, 0);
    p.scales.assign(scales, scales + (size_t)rows * G * 2);
    const uint8_t* codes = (const uint8_t*)q;
    for (int r = 0; r < rows; r++) {
      for (int k = 0; k < K; k++) {
        const int g = k / QGROUP, j = k % QGROUP;
        const uint8_t c = codes[(size_t)r * K + k] & 15;
        uint8_t& b = p.data[(size_t)r * (Kp / 2) + g * 16 + (j & 15)];
        b = (uint8_t)(j < 16 ? (b & 0xf0) | c : (b & 0x0f) | (c << 4));
      }
    }
  } else {
    throw CudaError("pack_quantized: kind must be int8 or int4");
  }
  return p;
}

}  // namespace loom_cuda
