// RMSNorm and RoPE on f32 activations.
//   rms_norm_f32(x, w, out, n, eps)   x, out: [n_tok][n]; w: [n]. out may equal x.
//       Launch (src/cuda/launch.rs `rms_norm`): block 256, grid n_tok.
//   rope_norm_f32 / rope_neox_f32(x, pos, n_heads, head_dim, n_rot, theta_scale, freq_factors)
//       x: [n_tok][n_heads·head_dim], rotated in place (first n_rot dims of each head);
//       pos: int32 [n_tok]; theta_scale = freq_base^(−2/n_rot) computed by the host;
//       freq_factors: f32 [n_rot/2] or null. "norm" rotates adjacent pairs (llama GGUF),
//       "neox" pairs i and i + n_rot/2 (qwen2, HF llama).
//       Launch (src/cuda/launch.rs `rope`): block n_rot/2, grid (n_heads, n_tok).
#include "ops.cuh"

using namespace sluice;

constexpr int RMS_THREADS = 256;

extern "C" __global__ void __launch_bounds__(RMS_THREADS)
    rms_norm_f32(const float* __restrict__ x, const float* __restrict__ w, float* out, int n,
                 float eps) {
    __shared__ float warp_sums[RMS_THREADS / WARP];
    const int64_t base = (int64_t)blockIdx.x * n;
    const int tid = threadIdx.x, lane = tid % WARP, warp_id = tid / WARP;
    float part = 0.0f;
    for (int i = tid; i < n; i += RMS_THREADS) part = fmaf(x[base + i], x[base + i], part);
    part = warp_sum(part);
    if (lane == 0) warp_sums[warp_id] = part;
    __syncthreads();
    const float total = warp_sum(lane < RMS_THREADS / WARP ? warp_sums[lane] : 0.0f);
    const float scale = rms_scale(total, n, eps);
    for (int i = tid; i < n; i += RMS_THREADS) out[base + i] = rms_apply(x[base + i], scale, w[i]);
}

template <bool NEOX>
__device__ __forceinline__ void rope_body(float* x, const int* pos, int n_heads, int head_dim,
                                          int n_rot, float theta_scale,
                                          const float* freq_factors) {
    const int i = threadIdx.x;
    if (i >= n_rot / 2) return;
    const int tok = blockIdx.y, head = blockIdx.x;
    float* h = x + ((int64_t)tok * n_heads + head) * head_dim;
    const float theta = rope_theta(pos[tok], i, theta_scale, freq_factors);
    float s, c;
    sincosf(theta, &s, &c);
    int a, b;
    rope_pair_index(i, n_rot, NEOX, &a, &b);
    rope_rotate(&h[a], &h[b], c, s);
}

extern "C" __global__ void __launch_bounds__(128)
    rope_norm_f32(float* x, const int* pos, int n_heads, int head_dim, int n_rot,
                  float theta_scale, const float* freq_factors) {
    rope_body<false>(x, pos, n_heads, head_dim, n_rot, theta_scale, freq_factors);
}
extern "C" __global__ void __launch_bounds__(128)
    rope_neox_f32(float* x, const int* pos, int n_heads, int head_dim, int n_rot,
                  float theta_scale, const float* freq_factors) {
    rope_body<true>(x, pos, n_heads, head_dim, n_rot, theta_scale, freq_factors);
}
