// Decode attention over an f16 KV cache with grouped-query heads and a causal limit:
//   attn_decode_f16kv(q, k_cache, v_cache, out, pos, n_head, n_head_kv, head_dim, scale)
//       q, out: f32 [n_tok][n_head·head_dim]; caches: f16 [n_ctx][n_head_kv·head_dim] for one
//       layer (rows = positions; V is not transposed); pos: int32 [n_tok], token t attends to
//       positions 0..=pos[t]; query head h reads kv head h / (n_head / n_head_kv);
//       head_dim a multiple of 32, at most 256; scale = 1/sqrt(head_dim).
//   Launch (src/cuda/launch.rs `attention`): block (32, 4), grid (n_head, n_tok), static shared
//   memory 5,152 bytes. Each warp runs an online softmax over every 4th position; the four
//   partial (max, sum, accumulator) states are merged at the end. q stays f32 (the CPU path
//   rounds q and the probabilities to f16; the host check bounds the difference).
#include "ops.cuh"

using namespace sluice;

constexpr int AT_WARPS = 4;
constexpr int AT_HEAD_DIM_MAX = 256;
constexpr int AT_PER_LANE = AT_HEAD_DIM_MAX / WARP;

extern "C" __global__ void __launch_bounds__(WARP * AT_WARPS)
    attn_decode_f16kv(const float* __restrict__ q, const uint16_t* __restrict__ k_cache,
                      const uint16_t* __restrict__ v_cache, float* __restrict__ out,
                      const int* __restrict__ pos, int n_head, int n_head_kv, int head_dim,
                      float scale) {
    __shared__ float q_s[AT_HEAD_DIM_MAX];
    __shared__ float m_s[AT_WARPS], l_s[AT_WARPS];
    __shared__ float acc_s[AT_WARPS][AT_HEAD_DIM_MAX];
    const int head = blockIdx.x, tok = blockIdx.y;
    const int lane = threadIdx.x, w = threadIdx.y, tid = w * WARP + lane;
    const int kv_dim = n_head_kv * head_dim;
    const int kvh = head / (n_head / n_head_kv);
    const int64_t q_off = ((int64_t)tok * n_head + head) * head_dim;
    for (int d = tid; d < head_dim; d += WARP * AT_WARPS) q_s[d] = q[q_off + d];
    __syncthreads();

    const int n_valid = pos[tok] + 1;
    SoftmaxState st = softmax_init();
    float acc[AT_PER_LANE];
#pragma unroll
    for (int i = 0; i < AT_PER_LANE; ++i) acc[i] = 0.0f;
    for (int j = w; j < n_valid; j += AT_WARPS) {
        const uint16_t* kr = k_cache + (int64_t)j * kv_dim + kvh * head_dim;
        const uint16_t* vr = v_cache + (int64_t)j * kv_dim + kvh * head_dim;
        float part = 0.0f;
#pragma unroll
        for (int i = 0; i < AT_PER_LANE; ++i) {
            const int d = lane + WARP * i;
            if (d < head_dim) part = fmaf(q_s[d], f16_to_f32(kr[d]), part);
        }
        const float s = mul_rn(warp_sum(part), scale);
        float p;
        const float c = softmax_push(&st, s, &p);
#pragma unroll
        for (int i = 0; i < AT_PER_LANE; ++i) {
            const int d = lane + WARP * i;
            if (d < head_dim) acc[i] = softmax_acc(acc[i], c, p, f16_to_f32(vr[d]));
        }
    }
#pragma unroll
    for (int i = 0; i < AT_PER_LANE; ++i) {
        const int d = lane + WARP * i;
        if (d < head_dim) acc_s[w][d] = acc[i];
    }
    if (lane == 0) {
        m_s[w] = st.m;
        l_s[w] = st.l;
    }
    __syncthreads();

    float m_all = -INFINITY;
#pragma unroll
    for (int k = 0; k < AT_WARPS; ++k) m_all = fmaxf(m_all, m_s[k]);
    float e[AT_WARPS], l_all = 0.0f;
#pragma unroll
    for (int k = 0; k < AT_WARPS; ++k) {
        e[k] = softmax_rescale(m_s[k], m_all);
        l_all = fmaf(l_s[k], e[k], l_all);
    }
    for (int d = tid; d < head_dim; d += WARP * AT_WARPS) {
        float o = 0.0f;
#pragma unroll
        for (int k = 0; k < AT_WARPS; ++k) o = fmaf(acc_s[k][d], e[k], o);
        out[q_off + d] = div_rn(o, l_all);
    }
}
