// Weight conversion at load: decode the checkpoint's f32/f16/bf16 bytes and store them as f32, f16, bf16,
// int8 (symmetric, one f16 scale per group of 32, as Q8_0) or int4 (f32 scale + min per group of 32), each
// row's scales stored right after its codes (MatW in common.h).
// The arithmetic is exactly src/formats/quant.ts's (same divisions in double, same rounding), so the
// TypeScript quantizer is a bit-exact oracle for the tests. Compiled without FMA contraction.
#include <math.h>

#include <cstring>
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
WeightT* alloc_matrix(Context& c, int rows, int cols, int storage) {
  auto* w = new WeightT();
  w->isVector = false;
  const int K = cols, Kp = round_up(cols, QGROUP);
  const bool quantized = storage == ST_INT8 || storage == ST_INT4;
  const bool panels = quantized && c.useQuantPanels();
  const size_t groupBytes = storage == ST_INT4 ? QP_GROUP_BYTES_INT4 : QP_GROUP_BYTES_INT8;
  const size_t rowBytes = panels ? (size_t)Kp / QGROUP * (groupBytes / QP_ROWS) : mat_row_bytes(storage, Kp);
  const size_t allocRows = panels ? (size_t)round_up(rows, QP_ROWS) : (size_t)rows;
  w->data = c.arena.alloc(allocRows * rowBytes);
  if (!w->data) {
    delete w;
    throw std::bad_alloc();
  }
  w->bytes = allocRows * rowBytes;
  const void* scales = quantized && !panels ? (const char*)w->data + mat_code_bytes(storage, Kp) : nullptr;
  w->mat = MatW{storage, rows, K, Kp, w->data, scales, rowBytes, panels};
  return w;
}

/** Element r·K … r·K + K of the checkpoint tensor into tmp[0, Kp), zero-padded. */
void read_padded_row(const uint8_t* src, int dtype, long r, int K, int Kp, float* tmp) {
  read_row(src, dtype, (size_t)r * K, K, tmp);
  for (int k = K; k < Kp; k++) tmp[k] = 0.0f;
}

/** Row r of a row-major m from the f32 row tmp (Kp values), converted or quantized to m's storage. */
void write_row(const Context& c, const MatW& m, long r, const float* tmp) {
  const int K = m.K, Kp = m.Kp;
  void* row = const_cast<char*>(mat_row<char>(m, r));
  switch (m.storage) {
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

/** Row r of a row-major int8/int4 m from quant.ts codes (one per element, m.K of them) and scales (int8: Kp/32
 * d; int4: Kp/32 (d, m) pairs), stored as they are. */
void write_quantized_row(const MatW& m, long r, const void* q, const float* scales) {
  const int cols = m.K, G = m.Kp / QGROUP;
  char* row = const_cast<char*>(mat_row<char>(m, r));
  if (m.storage == ST_INT8) {
    std::memcpy(row, q, (size_t)cols);
    uint16_t* d = const_cast<uint16_t*>(mat_scales<uint16_t>(m, r));
    for (int g = 0; g < G; g++) d[g] = f32_to_f16(scales[g]);  // quant.ts int8 scales are f16 values: exact
    return;
  }
  // one 0..15 code per element in → two per byte, element j low and j+16 high within each group
  const uint8_t* codes = (const uint8_t*)q;
  for (int g = 0; g < G; g++)
    for (int j = 0; j < 16; j++) {
      const int k = g * QGROUP + j;
      const uint8_t lo = k < cols ? codes[k] & 15 : 0;
      const uint8_t hi = k + 16 < cols ? codes[k + 16] & 15 : 0;
      row[g * 16 + j] = (char)(lo | (hi << 4));
    }
  std::memcpy(const_cast<float*>(mat_scales<float>(m, r)), scales, (size_t)G * 8);
}

/** Bytes of a panel's staging: its QP_ROWS rows as a row-major matrix of m's storage. */
size_t panel_stage_bytes(const MatW& m) { return QP_ROWS * mat_row_bytes(m.storage, m.Kp); }

/** A zeroed row-major QP_ROWS-row matrix over buf (panel_stage_bytes), where a panel's rows are written first. */
MatW panel_stage(const MatW& m, void* buf) {
  std::memset(buf, 0, panel_stage_bytes(m));
  const size_t rowBytes = mat_row_bytes(m.storage, m.Kp);
  return MatW{m.storage, QP_ROWS, m.K, m.Kp, buf, (const char*)buf + mat_code_bytes(m.storage, m.Kp), rowBytes};
}

/** Panel p (MatW's layout) from its rows staged row-major (rows past N zero). A whole panel at a time, so that
 * threads never write the same cache lines. */
void store_panel(const MatW& m, size_t p, const MatW& st) {
  const int G = m.Kp / QGROUP;
  char* pan = const_cast<char*>(mat_panel(m, p));
  for (int g = 0; g < G; g++) {
    if (m.storage == ST_INT8) {
      // codes offset to unsigned (q + 128) for vpdpbusd's unsigned operand
      char* blk = pan + (size_t)g * QP_GROUP_BYTES_INT8;
      for (int i = 0; i < QP_ROWS; i++) {
        const int8_t* q = mat_row<int8_t>(st, i) + g * QGROUP;
        for (int k = 0; k < QGROUP; k++) blk[qp_int8_byte(k, i)] = (char)(q[k] ^ 0x80);
        std::memcpy(blk + QP_INT8_D + 2 * i, mat_scales<uint16_t>(st, i) + g, 2);
      }
    } else {
      // row-major: byte j of a group holds element j (low nibble) and j + 16 (high)
      char* blk = pan + (size_t)g * QP_GROUP_BYTES_INT4;
      for (int i = 0; i < QP_ROWS; i++) {
        const uint8_t* q = mat_row<uint8_t>(st, i) + g * QGROUP / 2;
        for (int k = 0; k < QGROUP; k++) {  // a low-nibble column comes before its high partner (k + 4)
          const int code = k < 16 ? q[k] & 15 : q[k - 16] >> 4;
          char& b = blk[qp_int4_byte(k, i)];
          b = qp_int4_high(k) ? (char)(b | code << 4) : (char)code;
        }
        const float* dm = mat_scales<float>(st, i) + 2 * g;
        std::memcpy(blk + QP_INT4_D + 4 * i, dm, 4);
        std::memcpy(blk + QP_INT4_M + 4 * i, dm + 1, 4);
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
    w->data = c.arena.alloc((size_t)rows * 4);
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
  const size_t stage = m.panels ? panel_stage_bytes(m) : 0;  // after the f32 row in the thread's scratch
  const size_t scratch = (size_t)Kp + stage / 4;
  c.reserveThreadScratch(scratch);
  const double work = (double)rows * K;
  if (m.panels) {
    auto job = [&](long p0, long p1, int tid) {
      float* tmp = c.threadScratch(tid, scratch);
      for (long p = p0; p < p1; p++) {
        const MatW st = panel_stage(m, tmp + Kp);
        for (long i = 0; i < QP_ROWS && p * QP_ROWS + i < rows; i++) {
          read_padded_row(src, srcDtype, p * QP_ROWS + i, K, Kp, tmp);
          write_row(c, st, i, tmp);
        }
        store_panel(m, (size_t)p, st);
      }
    };
    c.pool->parallelFor((rows + QP_ROWS - 1) / QP_ROWS, 1, threads_for(c, work), job);
    return w;
  }
  auto job = [&](long r0, long r1, int tid) {
    float* tmp = c.threadScratch(tid, scratch);
    for (long r = r0; r < r1; r++) {
      read_padded_row(src, srcDtype, r, K, Kp, tmp);
      write_row(c, m, r, tmp);
    }
  };
  c.pool->parallelFor(rows, 1, threads_for(c, work), job);
  return w;
}

WeightT* make_weight_quantized(Context& c, int storage, int rows, int cols, const void* q, const float* scales) {
  WeightT* w = alloc_matrix(c, rows, cols, storage);
  const MatW& m = w->mat;
  const int scaleFloats = (storage == ST_INT8 ? 1 : 2) * (m.Kp / QGROUP);  // per row
  auto codesOf = [&](long r) { return (const uint8_t*)q + (size_t)r * cols; };
  if (!m.panels) {
    for (int r = 0; r < rows; r++) write_quantized_row(m, r, codesOf(r), scales + (size_t)r * scaleFloats);
    return w;
  }
  std::vector<char> buf(panel_stage_bytes(m) + 64);
  void* aligned = buf.data() + (64 - (uintptr_t)buf.data() % 64) % 64;
  for (int p = 0; p * QP_ROWS < rows; p++) {
    const MatW st = panel_stage(m, aligned);
    for (int i = 0; i < QP_ROWS && p * QP_ROWS + i < rows; i++) {
      const long r = (long)p * QP_ROWS + i;
      write_quantized_row(st, i, codesOf(r), scales + (size_t)r * scaleFloats);
    }
    store_panel(m, (size_t)p, st);
  }
  return w;
}

}  // namespace loom
