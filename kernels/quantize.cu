// Activation quantiser for the quantised matvec:
//   quantize_q8_1_f32(x, y, row_elems)   x: f32 [n_tok][row_elems]; y: Q8_1 [n_tok][row_elems/32]
//   Launch (src/cuda/launch.rs `quantize_q8_1`): block 256 (8 warps, one Q8_1 block each),
//   grid (ceil(row_elems / 256), n_tok); row_elems a multiple of 32.
// Bit-identical to the CPU backend's scalar Q8_1 quantiser (vecdot.cuh).
#include "ops.cuh"
#include "vecdot.cuh"

using namespace sluice;

constexpr int QZ_THREADS = 256;

extern "C" __global__ void __launch_bounds__(QZ_THREADS)
    quantize_q8_1_f32(const float* __restrict__ x, block_q8_1* __restrict__ y, int row_elems) {
    const int i = blockIdx.x * QZ_THREADS + threadIdx.x;
    if (i >= row_elems) return;  // row_elems % 32 == 0: whole warps leave together
    const int tok = blockIdx.y;
    const float v = x[(int64_t)tok * row_elems + i];
    const float amax = warp_max(fabsf(v));
    const int q = q8_quant(v, q8_inv_scale(amax));
    const int sum = warp_sum_i(q);
    block_q8_1* b = y + (int64_t)tok * (row_elems / QK) + i / QK;
    b->qs[i % QK] = (int8_t)q;
    if (i % QK == 0) q8_1_scales(amax, sum, b->d, b->s);
}
