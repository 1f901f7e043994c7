// Matrix × vector for decode: one warp per weight row, lane l taking the row's 32-element
// sub-blocks l, l + 32, …; the lane partials are then summed by the warp butterfly. These are
// the per-lane loops, shared by the kernels (matvec.cu) and the host check.
#pragma once

#include "vecdot.cuh"

namespace sluice {

constexpr int MV_WARPS = 4;  // rows (warps) per CUDA block

// Quantised row · Q8_1 activations: lane's partial sum over its sub-blocks.
template <typename T>
SLUICE_HD float mv_lane_q8_1(const uint8_t* w_row, const block_q8_1* y_row, int row_elems,
                             int lane) {
    constexpr int subs = T::qk / QK;
    const int n_sub = row_elems / QK;
    float acc = 0.0f;
    for (int s = lane; s < n_sub; s += 32) {
        acc = add_rn(acc, T::vd(w_row + (s / subs) * T::bytes, s % subs, y_row + s));
    }
    return acc;
}

// Float row (F32/F16/BF16) · f32 activations: lane's fmaf partial over elements l, l + 32, ….
template <typename T>
SLUICE_HD float mv_lane_f32(const uint8_t* w_row, const float* x, int row_elems, int lane) {
    float acc = 0.0f;
    for (int i = lane; i < row_elems; i += 32) {
        acc = fmaf(T::dq(w_row + (int64_t)i * T::bytes, 0), x[i], acc);
    }
    return acc;
}

}  // namespace sluice
