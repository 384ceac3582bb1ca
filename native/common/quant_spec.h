// The numeric formats both native addons (native/cpu, native/cuda) must reproduce bit for bit, as
// src/formats/dtype.ts and src/formats/quant.ts specify them: float ⇄ bf16 / f16 conversions (round to
// nearest even) and the int8 / int4 group quantizers (divisions in double, one rounding each, as JS does).
// Header-only; each addon pulls the names into its own namespace.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace loom_spec {

constexpr int QUANT_GROUP = 32;

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }
/** Round to nearest even; NaN stays a quiet NaN (as torch and dtype.ts f32ToBf16). */
inline uint16_t f32_to_bf16(float x) {
  uint32_t u = f32_to_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t frac = h & 0x3ff;
  if (exp == 0) {
    float v = (float)frac * (1.0f / 16777216.0f);  // frac * 2^-24
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (frac << 13));
  return bits_to_f32(sign | ((exp + 112) << 23) | (frac << 13));
}
/** IEEE f32 → f16, round to nearest even (what F16C's vcvtps2ph does with rounding mode 0). */
inline uint16_t f32_to_f16(float x) {
  uint32_t u = f32_to_bits(x);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0);  // inf / NaN
  if (a >= 0x477ff000u) return sign | 0x7c00;  // rounds to inf (≥ 65520)
  if (a < 0x38800000u) {                       // subnormal half (or zero): value * 2^24 rounded to int
    if (a < 0x33000000u) return sign;          // < 2^-25 → ±0
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7fffff) | 0x800000;
    int shift = 126 - (int)e;  // m * 2^(e-150) * 2^24 = m >> (126 - e)
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return sign | (uint16_t)q;
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // RNE on the 13 dropped bits
  return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

/** std::floor without the libm call a baseline x86-64 build makes (no SSE4.1 roundsd), bit for bit: the
 * truncation of a |v| < 2^52 is exact; NaN, ±inf and larger values go to std::floor. */
inline double floor_inline(double v) {
  if (!(std::fabs(v) < 4503599627370496.0)) return std::floor(v);
  const double t = (double)(long long)v;
  if (t == v) return v;  // an integer (−0 stays −0)
  return t > v ? t - 1 : t;
}

/** quant.ts roundHalfUp: floor, then up when the fraction is ≥ 0.5. */
inline double round_half_up(double v) {
  const double f = floor_inline(v);
  return f + (v - f >= 0.5 ? 1.0 : -0.0);  // a select, not a branch mispredicted half the time (f + −0 is f)
}

/** quant.ts int8WeightScale: a weight group's scale is also rounded to f16 (as Q8_0 stores it), at most 65504. */
inline float int8_weight_scale(float d) {
  const float h = f16_to_f32(f32_to_f16(d));
  return h > 65504.0f ? 65504.0f : h;
}

/** quant.ts quantizeInt8Group's scale of a group whose largest |x| is amax: fround(amax / 127) (weights: then
 * int8_weight_scale). */
inline float int8_group_scale(float amax, bool weight) {
  const float d = (float)((double)amax / 127.0);
  return weight ? int8_weight_scale(d) : d;
}

/** One code of quant.ts: clamp(roundHalfUp((x − off) / d), lo, hi), in double (d ≠ 0; int8: off 0). */
inline double quant_code(float x, float off, float d, double lo, double hi) {
  const double v = round_half_up(((double)x - (double)off) / (double)d);
  return v < lo ? lo : v > hi ? hi : v;
}

/** quant.ts quantizeInt8Group over n values (a weight group, or one int8 KV vector): d = fround(amax / 127)
 * (weights: then int8_weight_scale), q = clamp(roundHalfUp(x / d), ±127). */
inline float quantize_int8_group(const float* x, int n, int8_t* q, bool weight = false) {
  float amax = 0.0f;
  for (int i = 0; i < n; i++) {  // as std::fmax (a NaN is skipped), without its libm call
    const float a = std::fabs(x[i]);
    if (a > amax) amax = a;
  }
  const float d = int8_group_scale(amax, weight);
  for (int i = 0; i < n; i++) q[i] = (int8_t)(d == 0.0f ? 0.0 : quant_code(x[i], 0.0f, d, -127, 127));
  return d;
}

/** quant.ts quantizeInt4's min and max of n ≥ 1 values, as std::fmin / std::fmax in glibc's libm compute them
 * (a NaN is skipped; of two equal values, ±0 included, the second), without the calls. */
inline void int4_group_range(const float* x, int n, float* mn, float* mx) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; i++) {
    const float v = x[i];
    if (v == v && !(lo < v)) lo = v;
    if (v == v && !(hi > v)) hi = v;
  }
  *mn = lo;
  *mx = hi;
}

/** quant.ts quantizeInt4's scale: fround((max − min) / 15). */
inline float int4_group_scale(float mn, float mx) { return (float)(((double)mx - (double)mn) / 15.0); }

/**
 * quant.ts quantizeInt4 over n ≤ 32 values: m = min, d = fround((max − m) / 15),
 * q = clamp(roundHalfUp((x − m) / d), 0, 15); codes[n..32) are zero.
 */
inline void quantize_int4_group(const float* x, int n, uint8_t* codes, float* d, float* m) {
  float mn, mx;
  int4_group_range(x, n, &mn, &mx);
  const float dd = int4_group_scale(mn, mx);
  for (int i = 0; i < QUANT_GROUP; i++) codes[i] = 0;
  if (dd != 0.0f)
    for (int i = 0; i < n; i++) codes[i] = (uint8_t)quant_code(x[i], mn, dd, 0, 15);
  *d = dd;
  *m = mn;
}

}  // namespace loom_spec
