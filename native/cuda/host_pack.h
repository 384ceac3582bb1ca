// Host-side conversion of checkpoint tensors into the device layouts of common.h (WeightView): decode
// f32/f16/bf16 bytes, pad rows to a multiple of 32 columns, and store as f32, f16, bf16, int8 or int4 with
// exactly src/formats/quant.ts's arithmetic (doubles for the divisions, round-half-up), so that the
// TypeScript quantizer is the tests' bit-exact oracle. Runs without a GPU (the tests call it through the
// addon's packWeight on machines with no CUDA device).
#pragma once

#include <cstdint>
#include <vector>

namespace loom_cuda {

struct PackedWeight {
  /** Device layout bytes (see WeightView). */
  std::vector<uint8_t> data;
  /** int8: d per (row, group); int4: (d, min) per (row, group); empty otherwise. */
  std::vector<float> scales;
  int rows = 0;
  int cols = 0;
  int Kp = 0;
};

/** cols == 0: a vector of `rows` values, always f32. Multi-threaded over rows for large matrices. */
PackedWeight pack_weight(const uint8_t* src, int srcDtype, int rows, int cols, int storage);

/**
 * An already-quantized matrix in quant.ts's QuantizedMatrix form (one code per element, row-major: int8 q
 * or int4 0..15 codes; scales as quant.ts), packed into the device layout. `kind` is ST_INT8 or ST_INT4.
 */
PackedWeight pack_quantized(int kind, int rows, int cols, const void* q, const float* scales);

// Scalar conversions, bit-exact with src/formats/dtype.ts and quant.ts.
float bf16_to_f32_host(uint16_t h);
uint16_t f32_to_bf16_host(float x);
float f16_to_f32_host(uint16_t h);
uint16_t f32_to_f16_host(float x);

}  // namespace loom_cuda
