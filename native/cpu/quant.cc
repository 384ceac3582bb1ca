// Weight conversion at load: decode the checkpoint's f32/f16/bf16 bytes and store them as f32, f16, bf16,
// int8 (symmetric, one f16 scale per group of 32, as Q8_0) or int4 (f32 scale + min per group of 32), each
// row's scales stored right after its codes (MatW in common.h).
// The arithmetic is exactly src/formats/quant.ts's (same divisions in double, same rounding), so the
// TypeScript quantizer is a bit-exact oracle for the tests. Compiled without FMA contraction.
#include <math.h>

#include <cstring>
#include <algorithm>
#include <new>
#include <vector>

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

/** A matrix weight with zeroed, padded storage for `storage` (rows of Kp = cols rounded up to 32; int8/int4 in
 * 16-row panels where the context multiplies those, MatW). */
WeightT* alloc_matrix(const Context& c, int rows, int cols, int storage) {
  auto* w = new WeightT();
  w->isVector = false;
  const int K = cols, Kp = round_up(cols, QGROUP);
  const bool quantized = storage == ST_INT8 || storage == ST_INT4;
  const bool panels = quantized && c.useQuantPanels();
  const size_t groupBytes = storage == ST_INT4 ? QP_GROUP_BYTES_INT4 : QP_GROUP_BYTES_INT8;
  const size_t rowBytes = panels ? (size_t)Kp / QGROUP * (groupBytes / QP_ROWS) : mat_row_bytes(storage, Kp);
  const size_t allocRows = panels ? (size_t)round_up(rows, QP_ROWS) : (size_t)rows;
  w->data = aligned_zalloc(allocRows * rowBytes);
  if (!w->data) {
    delete w;
    throw std::bad_alloc();
  }
  w->bytes = allocRows * rowBytes;
  const void* scales = quantized && !panels ? (const char*)w->data + mat_code_bytes(storage, Kp) : nullptr;
  w->mat = MatW{storage, rows, K, Kp, w->data, scales, rowBytes, panels};
  return w;
}

/**
 * One panel's rows before they are interleaved: codes [QP_ROWS][Kp] (one per element: int8, or int4's 0..15),
 * then scales [QP_ROWS] as a row stores them (int8: Kp/32 f16 d; int4: Kp/32 (d, m) f32 pairs).
 */
size_t panel_stage_bytes(int storage, int Kp) {
  const size_t G = (size_t)Kp / QGROUP;
  return QP_ROWS * ((size_t)Kp + (storage == ST_INT4 ? 8 * G : 2 * G));
}

/** Panel p (MatW's layout) from its staged rows (rows past N zero). A whole panel at a time, so that threads
 * never write the same cache lines. */
void store_panel(const MatW& m, size_t p, const int8_t* q) {
  const int Kp = m.Kp, G = Kp / QGROUP;
  const char* sc = (const char*)q + (size_t)QP_ROWS * Kp;
  char* pan = const_cast<char*>(mat_panel(m, p));
  for (int g = 0; g < G; g++) {
    if (m.storage == ST_INT8) {
      char* blk = pan + (size_t)g * QP_GROUP_BYTES_INT8;
      for (int j = 0; j < QGROUP / 2; j++)
        for (int i = 0; i < QP_ROWS; i++) std::memcpy(blk + 32 * j + 2 * i, q + (size_t)i * Kp + g * QGROUP + 2 * j, 2);
      for (int i = 0; i < QP_ROWS; i++) std::memcpy(blk + 512 + 2 * i, sc + ((size_t)i * G + g) * 2, 2);
    } else {
      char* blk = pan + (size_t)g * QP_GROUP_BYTES_INT4;
      for (int b = 0; b < 8; b++)
        for (int e = 0; e < 32; e++) {
          const int8_t* row = q + (size_t)(e / 2) * Kp + g * QGROUP + e % 2;
          blk[32 * b + e] = (char)((row[4 * b] & 15) | (row[4 * b + 2] & 15) << 4);  // chunks 2b and 2b + 1
        }
      for (int i = 0; i < QP_ROWS; i++) {
        std::memcpy(blk + 256 + 4 * i, sc + ((size_t)i * G + g) * 8, 4);
        std::memcpy(blk + 320 + 4 * i, sc + ((size_t)i * G + g) * 8 + 4, 4);
      }
    }
  }
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
  WeightT* w = alloc_matrix(c, rows, cols, storage);
  const MatW& m = w->mat;
  const int K = cols, Kp = m.Kp;
  if (m.panels) {
    // a panel's 16 rows quantized into the thread's scratch (after the f32 row and int4's packed codes), then
    // written as the panel
    const int G = Kp / QGROUP;
    const size_t stage = panel_stage_bytes(storage, Kp);
    const size_t scratch = (size_t)Kp + (size_t)Kp / 8 + stage / 4 + 1;
    c.reserveThreadScratch(scratch);
    auto panels = [&](long p0, long p1, int tid) {
      float* tmp = c.threadScratch(tid, scratch);
      uint8_t* packed = reinterpret_cast<uint8_t*>(tmp + Kp);
      int8_t* q = reinterpret_cast<int8_t*>(packed + Kp / 2);
      char* sc = (char*)q + (size_t)QP_ROWS * Kp;
      for (long p = p0; p < p1; p++) {
        std::memset(q, 0, stage);
        for (int i = 0; i < QP_ROWS && p * QP_ROWS + i < rows; i++) {
          read_row(src, srcDtype, (size_t)(p * QP_ROWS + i) * K, K, tmp);
          for (int k = K; k < Kp; k++) tmp[k] = 0.0f;
          int8_t* codes = q + (size_t)i * Kp;
          if (storage == ST_INT8) {
            c.K->quantInt8Row(tmp, K, Kp, codes, reinterpret_cast<uint16_t*>(sc) + (size_t)i * G);
            continue;
          }
          c.K->quantInt4Row(tmp, K, Kp, packed, reinterpret_cast<float*>(sc) + (size_t)i * 2 * G);
          for (int k = 0; k < Kp; k++) {  // byte j of a group: element j low, j + 16 high (MatW)
            const uint8_t b = packed[k / QGROUP * 16 + k % 16];
            codes[k] = (int8_t)(k % QGROUP < 16 ? b & 15 : b >> 4);
          }
        }
        store_panel(m, (size_t)p, q);
      }
    };
    c.pool->parallelFor((rows + QP_ROWS - 1) / QP_ROWS, 1, threads_for(c, (double)rows * K), panels);
    return w;
  }
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

WeightT* make_weight_quantized(Context& c, int storage, int rows, int cols, const void* q, const float* scales) {
  WeightT* w = alloc_matrix(c, rows, cols, storage);
  const MatW& m = w->mat;
  const int G = m.Kp / QGROUP;
  const int scaleFloats = storage == ST_INT8 ? G : 2 * G;  // per row
  if (m.panels) {
    std::vector<int8_t> stage(panel_stage_bytes(storage, m.Kp));
    int8_t* codes = stage.data();
    char* sc = (char*)codes + (size_t)QP_ROWS * m.Kp;
    for (int p = 0; p * QP_ROWS < rows; p++) {
      std::fill(stage.begin(), stage.end(), 0);
      for (int i = 0; i < QP_ROWS && p * QP_ROWS + i < rows; i++) {
        const int r = p * QP_ROWS + i;
        std::memcpy(codes + (size_t)i * m.Kp, (const int8_t*)q + (size_t)r * cols, (size_t)cols);
        const float* src = scales + (size_t)r * scaleFloats;
        if (storage == ST_INT8)  // quant.ts int8 scales are f16 values (int8WeightScale): stored exactly
          for (int g = 0; g < G; g++) reinterpret_cast<uint16_t*>(sc)[(size_t)i * G + g] = f32_to_f16(src[g]);
        else
          std::memcpy(sc + (size_t)i * scaleFloats * 4, src, (size_t)scaleFloats * 4);
      }
      store_panel(m, (size_t)p, codes);
    }
    return w;
  }
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
