// Token embedding: out[i, :K] = dequant(table[tokenIds[i]]) * scale, bit-exact with the reference (one f32
// rounding of the product; dequantization as src/formats/quant.ts).
#include "device_util.cuh"
#include "kernels.h"

namespace loom_cuda {

__global__ void embed_kernel(float* __restrict__ out, WeightView table, const int* __restrict__ tokenIds,
                             float scale) {
  const int i = blockIdx.x;
  const int tok = tokenIds[i];
  const bool valid = tok >= 0 && tok < table.N;
  float* o = out + (size_t)i * table.K;
  for (int k = threadIdx.x; k < table.K; k += blockDim.x) {
    o[k] = valid ? __fmul_rn(weight_at(table, tok, k), scale) : 0.0f;
  }
}

void launch_embed(cudaStream_t s, float* out, const WeightView& table, const int* tokenIds, int numTokens,
                  float scale) {
  if (numTokens <= 0) return;
  const int threads = table.K >= 256 ? 256 : 128;
  LOOM_LAUNCH(numTokens, threads, 0, s, embed_kernel)(out, table, tokenIds, scale);
  check_launch("embed_kernel");
}

}  // namespace loom_cuda
