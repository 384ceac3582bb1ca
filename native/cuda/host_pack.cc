// Weight packing on the host (see host_pack.h). Compiled without FMA contraction concerns: every value is
// produced by a single rounding (a division in double, then a conversion), as quant.ts does.
#include "host_pack.h"

#include <cmath>
#include <cstring>
#include <thread>

#include "common.h"

namespace loom_cuda {

namespace {

float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

double round_half_up(double v) {
  const double f = std::floor(v);
  return v - f >= 0.5 ? f + 1 : f;
}

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

/** quant.ts quantizeInt8Group: d = fround(amax / 127), q = clamp(roundHalfUp(x / d), ±127). */
float quantize_int8_group(const float* x, int n, int8_t* q) {
  float amax = 0.0f;
  for (int i = 0; i < n; i++) amax = std::fmax(amax, std::fabs(x[i]));
  const float d = (float)((double)amax / 127.0);
  for (int i = 0; i < n; i++) {
    double v = d == 0.0f ? 0.0 : round_half_up((double)x[i] / (double)d);
    q[i] = (int8_t)(v < -127 ? -127 : v > 127 ? 127 : v);
  }
  return d;
}

/** quant.ts quantizeInt4: m = min, d = fround((max − m) / 15), q = clamp(roundHalfUp((x − m) / d), 0, 15). */
void quantize_int4_group(const float* x, int n, uint8_t* codes, float* d, float* m) {
  float mn = x[0], mx = x[0];
  for (int i = 1; i < n; i++) {
    mn = std::fmin(mn, x[i]);
    mx = std::fmax(mx, x[i]);
  }
  const float dd = (float)(((double)mx - (double)mn) / 15.0);
  for (int i = 0; i < QGROUP; i++) codes[i] = 0;
  if (dd != 0.0f) {
    for (int i = 0; i < n; i++) {
      double v = round_half_up(((double)x[i] - (double)mn) / (double)dd);
      codes[i] = (uint8_t)(v < 0 ? 0 : v > 15 ? 15 : v);
    }
  }
  *d = dd;
  *m = mn;
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

float bf16_to_f32_host(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

uint16_t f32_to_bf16_host(float x) {
  const uint32_t u = f32_to_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float f16_to_f32_host(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t frac = h & 0x3ff;
  if (exp == 0) {
    const float v = (float)frac * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (frac << 13));
  return bits_to_f32(sign | ((exp + 112) << 23) | (frac << 13));
}

uint16_t f32_to_f16_host(float x) {
  const uint32_t u = f32_to_bits(x);
  const uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0);
  if (a >= 0x477ff000u) return sign | 0x7c00;
  if (a < 0x38800000u) {
    if (a < 0x33000000u) return sign;
    const uint32_t e = a >> 23;
    const uint32_t m = (a & 0x7fffff) | 0x800000;
    const int shift = 126 - (int)e;
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return sign | (uint16_t)q;
  }
  const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
  return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

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
                quantize_int8_group(tmp.data() + g * QGROUP, n, (int8_t*)out + (size_t)r * Kp + g * QGROUP);
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
