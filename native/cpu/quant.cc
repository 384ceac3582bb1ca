// Weight conversion at load: decode the checkpoint's f32/f16/bf16 bytes and store them as f32, f16, bf16,
// int8 (symmetric, one f16 scale per group of 32, as Q8_0) or int4 (f32 scale + min per group of 32), each
// row's scales stored right after its codes (MatW in common.h).
// The arithmetic is exactly src/formats/quant.ts's (same divisions in double, same rounding), so the
// TypeScript quantizer is a bit-exact oracle for the tests. Compiled without FMA contraction.
#include <math.h>

#include <cstring>
#include <new>

#include "context.h"

namespace loom {

namespace {

/** Elements [i0, i0 + n) of the checkpoint tensor (f32, bf16 or f16) as f32. */
void read_row(const uint8_t* src, int dtype, size_t i0, int n, float* out) {
  if (dtype == ST_F32) {
    std::memcpy(out, src + 4 * i0, (size_t)n * 4);
  } else {
    const uint8_t* p = src + 2 * i0;  // (any alignment: memcpy per element compiles to plain loads)
    for (int k = 0; k < n; k++) {
      uint16_t h;
      std::memcpy(&h, p + 2 * k, 2);
      out[k] = dtype == ST_BF16 ? bits_to_f32((uint32_t)h << 16) : f16_to_f32(h);
    }
  }
}

/** A matrix weight with zeroed, padded storage for `storage` (rows of Kp = cols rounded up to 32). */
WeightT* alloc_matrix(int rows, int cols, int storage) {
  auto* w = new WeightT();
  w->isVector = false;
  const int K = cols, Kp = round_up(cols, QGROUP);
  const size_t rowBytes = mat_row_bytes(storage, Kp);
  w->data = aligned_zalloc((size_t)rows * rowBytes);
  if (!w->data) {
    delete w;
    throw std::bad_alloc();
  }
  w->bytes = (size_t)rows * rowBytes;
  const bool quantized = storage == ST_INT8 || storage == ST_INT4;
  const void* scales = quantized ? (const char*)w->data + mat_code_bytes(storage, Kp) : nullptr;
  w->mat = MatW{storage, rows, K, Kp, w->data, scales, rowBytes};
  return w;
}

}  // namespace

WeightT* make_weight(Context& c, const uint8_t* src, int srcDtype, int rows, int cols, int storage) {
  if (cols <= 0) {  // a vector: always f32
    auto* w = new WeightT();
    w->isVector = true;
    w->mat = MatW{ST_F32, rows, 0, 0, nullptr, nullptr, 0};
    w->data = aligned_zalloc((size_t)rows * 4);
    if (!w->data) {
      delete w;
      throw std::bad_alloc();
    }
    float* d = (float*)w->data;
    read_row(src, srcDtype, 0, rows, d);
    w->bytes = (size_t)rows * 4;
    w->mat.data = w->data;
    return w;
  }
  WeightT* w = alloc_matrix(rows, cols, storage);
  const MatW& m = w->mat;
  const int K = cols, Kp = m.Kp;
  c.reserveThreadScratch((size_t)Kp);
  auto job = [&](long r0, long r1, int tid) {
    float* tmp = c.threadScratch(tid, (size_t)Kp);
    for (long r = r0; r < r1; r++) {
      read_row(src, srcDtype, (size_t)r * K, K, tmp);
      for (int k = K; k < Kp; k++) tmp[k] = 0.0f;
      void* row = const_cast<char*>(mat_row<char>(m, r));
      switch (storage) {
        case ST_F32: std::memcpy(row, tmp, (size_t)Kp * 4); break;
        case ST_F16: {
          uint16_t* d = (uint16_t*)row;
          for (int k = 0; k < Kp; k++) d[k] = f32_to_f16(tmp[k]);
          break;
        }
        case ST_BF16: c.K->toBf16Row(tmp, Kp, (uint16_t*)row); break;
        case ST_INT8:
          c.K->quantInt8Row(tmp, K, Kp, (int8_t*)row, const_cast<uint16_t*>(mat_scales<uint16_t>(m, r)));
          break;
        case ST_INT4:
          c.K->quantInt4Row(tmp, K, Kp, (uint8_t*)row, const_cast<float*>(mat_scales<float>(m, r)));
          break;
      }
    }
  };
  c.pool->parallelFor(rows, 1, threads_for(c, (double)rows * K), job);
  return w;
}

WeightT* make_weight_quantized(int storage, int rows, int cols, const void* q, const float* scales) {
  WeightT* w = alloc_matrix(rows, cols, storage);
  const MatW& m = w->mat;
  const int G = m.Kp / QGROUP;
  const int scaleFloats = storage == ST_INT8 ? G : 2 * G;  // per row
  for (int r = 0; r < rows; r++) {
    char* row = const_cast<char*>(mat_row<char>(m, r));
    if (storage == ST_INT8) {
      std::memcpy(row, (const int8_t*)q + (size_t)r * cols, (size_t)cols);
    } else {
      // one 0..15 code per element in → two per byte, element j low and j+16 high within each group
      const uint8_t* codes = (const uint8_t*)q + (size_t)r * cols;
      for (int g = 0; g < G; g++)
        for (int j = 0; j < 16; j++) {
          const int k = g * QGROUP + j;
          const uint8_t lo = k < cols ? codes[k] & 15 : 0;
          const uint8_t hi = k + 16 < cols ? codes[k + 16] & 15 : 0;
          row[g * 16 + j] = (char)(lo | (hi << 4));
        }
    }
    const float* src = scales + (size_t)r * scaleFloats;
    if (storage == ST_INT8) {  // quant.ts int8 scales are f16 values (int8WeightScale): stored exactly
      uint16_t* d = const_cast<uint16_t*>(mat_scales<uint16_t>(m, r));
      for (int g = 0; g < G; g++) d[g] = f32_to_f16(src[g]);
    } else {
      std::memcpy(const_cast<float*>(mat_scales<float>(m, r)), src, (size_t)scaleFloats * 4);
    }
  }
  return w;
}

}  // namespace loom
