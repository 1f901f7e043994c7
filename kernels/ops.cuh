// Per-element and per-row math of the non-matmul ops, shared by the kernels and the host check:
// RMSNorm, RoPE (adjacent "norm" pairs and half-split "neox" pairs), SiLU/SwiGLU, the online
// softmax of decode attention, and argmax's tie rule. Each kernel's reduction order is fixed by
// the warp butterfly below, which the host check replays lane by lane.
#pragma once

#include "common.cuh"

#ifndef __CUDACC__
#include <cmath>
#endif

namespace sluice {

constexpr int WARP = 32;

#ifdef __CUDA_ARCH__
// Butterfly sum over a full warp: after it every lane holds the same total.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    return v;
}
__device__ __forceinline__ int warp_sum_i(int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    return v;
}
#else
// Host replay of warp_sum: lanes[32] in, every lane's result out (identical across lanes).
inline float warp_sum_host(float* lanes) {
    for (int o = 16; o > 0; o >>= 1) {
        float next[WARP];
        for (int l = 0; l < WARP; ++l) next[l] = lanes[l] + lanes[l ^ o];
        for (int l = 0; l < WARP; ++l) lanes[l] = next[l];
    }
    return lanes[0];
}
#endif

SLUICE_HD float sqrt_rn(float x) {
#ifdef __CUDA_ARCH__
    return __fsqrt_rn(x);
#else
    return std::sqrt(x);
#endif
}
SLUICE_HD float exp_f(float x) {
#ifdef __CUDA_ARCH__
    return expf(x);  // full-precision expf (max 2 ulp); never built with fast math
#else
    return std::exp(x);
#endif
}

// ---- RMSNorm: y = (x · 1/sqrt(mean(x²) + eps)) · w --------------------------------------
// Σx² is per-thread fmaf partials over a stride, then a block reduction (kernels/norm.cu).
SLUICE_HD float rms_scale(float sum_sq, int n, float eps) {
    const float mean = div_rn(sum_sq, (float)n);
    return div_rn(1.0f, sqrt_rn(add_rn(mean, eps)));
}
SLUICE_HD float rms_apply(float x, float scale, float w) { return mul_rn(mul_rn(x, scale), w); }

// ---- RoPE -------------------------------------------------------------------------------
// θ for pair i at position pos: pos · theta_scale^i by repeated f32 multiplication (as the
// CPU builds its table), divided by the pair's frequency factor when the model has them.
SLUICE_HD float rope_theta(int pos, int i, float theta_scale, const float* freq_factors) {
    float theta = (float)pos;
    for (int k = 0; k < i; ++k) theta = mul_rn(theta, theta_scale);
    return freq_factors ? div_rn(theta, freq_factors[i]) : theta;
}
// Rotates (x0, x1) by θ with cos c and sin s, with the CPU's fused multiply-adds.
SLUICE_HD void rope_rotate(float* x0, float* x1, float c, float s) {
    const float a = *x0, b = *x1;
    *x0 = fmaf(a, c, -mul_rn(b, s));
    *x1 = fmaf(a, s, mul_rn(b, c));
}
// Index pair of rotary pair i in a head: adjacent ("norm") or half-split ("neox").
SLUICE_HD void rope_pair_index(int i, int n_rot, bool neox, int* a, int* b) {
    *a = neox ? i : 2 * i;
    *b = neox ? i + n_rot / 2 : 2 * i + 1;
}

// ---- SwiGLU: silu(g) · u -------------------------------------------------------------------
SLUICE_HD float silu(float g) { return div_rn(g, add_rn(1.0f, exp_f(-g))); }
SLUICE_HD float swiglu(float g, float u) { return mul_rn(silu(g), u); }

// ---- Online softmax for decode attention -----------------------------------------------
// State of one warp's share of the positions: running max m, running Σe^(s−m) l, and (kept by
// the caller) the accumulator Σ e^(s−m)·v, rescaled whenever m grows.
struct SoftmaxState {
    float m, l;
};
SLUICE_HD SoftmaxState softmax_init() { return SoftmaxState{-INFINITY, 0.0f}; }
// Adds score s; returns the factor c that old accumulators are multiplied by and writes the
// new weight p of this position.
SLUICE_HD float softmax_push(SoftmaxState* st, float s, float* p) {
    const float m_new = fmaxf(st->m, s);
    const float c = exp_f(st->m - m_new);  // exp(-inf) = 0 on the first push
    *p = exp_f(s - m_new);
    st->l = fmaf(st->l, c, *p);
    st->m = m_new;
    return c;
}
SLUICE_HD float softmax_acc(float acc, float c, float p, float v) { return fmaf(p, v, mul_rn(acc, c)); }
// Weight of warp w's partial results in the final sum, given the max over all warps.
SLUICE_HD float softmax_rescale(float m_w, float m_all) {
    return m_w == -INFINITY ? 0.0f : exp_f(m_w - m_all);
}

// ---- Argmax: a later candidate wins only if strictly greater, or equal with a lower index ---
SLUICE_HD bool argmax_better(float v_new, int i_new, float v_old, int i_old) {
    return v_new > v_old || (v_new == v_old && i_new < i_old);
}

}  // namespace sluice
