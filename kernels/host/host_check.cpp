// Host replay of the kernels' arithmetic, for the tests in src/cuda/host_check.rs.
//
// Compiled by g++ through build.rs (always, no nvcc needed). It includes the same headers the
// kernels do and replays each kernel's thread/lane structure on the CPU: the same per-element
// functions, the same fmaf accumulations, the same warp-butterfly reduction order. Where the
// device uses an intrinsic the host cannot reproduce (expf, sincosf), the host uses libm; the
// tests' tolerances cover that difference.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../matmul.cuh"
#include "../matvec.cuh"
#include "../ops.cuh"

using namespace sluice;

namespace {

// GGUF type ids (loader/src/ggml_type.rs).
enum TypeId : int {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, IQ4_NL = 20, BF16 = 30,
};

template <typename T>
void dequant_row(const uint8_t* src, int64_t n, float* f32, uint16_t* f16) {
    for (int64_t i = 0; i < n; ++i) {
        const float v = dq_row<T>(src, i);
        f32[i] = v;
        f16[i] = f32_to_f16(v);
    }
}

// quantize_q8_1_f32, one warp per block of 32.
void quantize_q8_1(const float* x, int n, block_q8_1* y) {
    for (int b = 0; b < n / QK; ++b) {
        float amax = 0.0f;
        for (int l = 0; l < QK; ++l) amax = std::fmax(amax, std::fabs(x[b * QK + l]));
        const float id = q8_inv_scale(amax);
        int sum = 0;
        for (int l = 0; l < QK; ++l) {
            const int q = q8_quant(x[b * QK + l], id);
            y[b].qs[l] = (int8_t)q;
            sum += q;
        }
        q8_1_scales(amax, sum, y[b].d, y[b].s);
    }
}

template <typename T>
float row_dot_q8_1(const uint8_t* w, const block_q8_1* y, int row_elems) {
    float lanes[WARP];
    for (int l = 0; l < WARP; ++l) lanes[l] = mv_lane_q8_1<T>(w, y, row_elems, l);
    return warp_sum_host(lanes);
}

template <typename T>
float row_dot_f32(const uint8_t* w, const float* x, int row_elems) {
    float lanes[WARP];
    for (int l = 0; l < WARP; ++l) lanes[l] = mv_lane_f32<T>(w, x, row_elems, l);
    return warp_sum_host(lanes);
}

template <typename T>
void matmul(const uint8_t* w, const float* x, float* out, int n_rows, int row_elems, int n_tok) {
    static MmTile tile;
    static float acc[MM_THREADS][4][2];
    for (int row0 = 0; row0 < n_rows; row0 += MM_ROWS) {
        for (int tok0 = 0; tok0 < n_tok; tok0 += MM_TOKS) {
            std::memset(acc, 0, sizeof acc);
            for (int k0 = 0; k0 < row_elems; k0 += MM_K) {
                for (int t = 0; t < MM_THREADS; ++t)
                    mm_stage<T>(t, w, x, n_rows, row_elems, n_tok, row0, tok0, k0, &tile);
                for (int t = 0; t < MM_THREADS; ++t) mm_accumulate(t, &tile, acc[t]);
            }
            for (int t = 0; t < MM_THREADS; ++t) mm_store(t, acc[t], out, n_rows, n_tok, row0, tok0);
        }
    }
}

}  // namespace

extern "C" {

// Block sizes as the headers declare them (checked against the Rust layouts).
int sluice_hc_block_bytes(int type_id) {
    switch (type_id) {
        case F32: return t_f32::bytes;
        case F16: return t_f16::bytes;
        case BF16: return t_bf16::bytes;
        case Q4_0: return sizeof(block_q4_0);
        case Q4_1: return sizeof(block_q4_1);
        case Q5_0: return sizeof(block_q5_0);
        case Q5_1: return sizeof(block_q5_1);
        case Q8_0: return sizeof(block_q8_0);
        case Q8_1: return sizeof(block_q8_1);
        case IQ4_NL: return sizeof(block_iq4_nl);
        case Q2_K: return sizeof(block_q2_k);
        case Q3_K: return sizeof(block_q3_k);
        case Q4_K: return sizeof(block_q4_k);
        case Q5_K: return sizeof(block_q5_k);
        case Q6_K: return sizeof(block_q6_k);
        case Q8_K: return sizeof(block_q8_k);
        default: return -1;
    }
}

uint16_t sluice_hc_f32_to_f16(float x) { return f32_to_f16(x); }
float sluice_hc_f16_to_f32(uint16_t h) { return f16_to_f32(h); }

// The dequant kernels' values: f32 (before rounding) and the f16 they store. 0 on success.
int sluice_hc_dequant(int type_id, const uint8_t* src, int64_t n, float* f32, uint16_t* f16) {
    switch (type_id) {
        case F32: dequant_row<t_f32>(src, n, f32, f16); return 0;
        case F16: dequant_row<t_f16>(src, n, f32, f16); return 0;
        case BF16: dequant_row<t_bf16>(src, n, f32, f16); return 0;
        case Q4_0: dequant_row<t_q4_0>(src, n, f32, f16); return 0;
        case Q4_1: dequant_row<t_q4_1>(src, n, f32, f16); return 0;
        case Q5_0: dequant_row<t_q5_0>(src, n, f32, f16); return 0;
        case Q5_1: dequant_row<t_q5_1>(src, n, f32, f16); return 0;
        case Q8_0: dequant_row<t_q8_0>(src, n, f32, f16); return 0;
        case Q8_1: dequant_row<t_q8_1>(src, n, f32, f16); return 0;
        case IQ4_NL: dequant_row<t_iq4_nl>(src, n, f32, f16); return 0;
        case Q2_K: dequant_row<t_q2_k>(src, n, f32, f16); return 0;
        case Q3_K: dequant_row<t_q3_k>(src, n, f32, f16); return 0;
        case Q4_K: dequant_row<t_q4_k>(src, n, f32, f16); return 0;
        case Q5_K: dequant_row<t_q5_k>(src, n, f32, f16); return 0;
        case Q6_K: dequant_row<t_q6_k>(src, n, f32, f16); return 0;
        case Q8_K: dequant_row<t_q8_k>(src, n, f32, f16); return 0;
        default: return -1;
    }
}

// quantize_q8_1_f32 for one row of n (a multiple of 32) into n/32 blocks of 36 bytes.
void sluice_hc_quantize_q8_1(const float* x, int n, uint8_t* out) {
    quantize_q8_1(x, n, (block_q8_1*)out);
}

// The matvec kernels' result for one weight row and one token of f32 activations (quantised
// to Q8_1 first for quantised weights, as the GPU path does). 0 on success.
int sluice_hc_matvec_row(int type_id, const uint8_t* w, const float* x, int row_elems,
                         float* out) {
    static block_q8_1 y[4096];
    if (row_elems % QK != 0 || row_elems / QK > 4096) return -2;
    const bool quantised = type_id != F32 && type_id != F16 && type_id != BF16;
    if (quantised) quantize_q8_1(x, row_elems, y);
    switch (type_id) {
        case F32: *out = row_dot_f32<t_f32>(w, x, row_elems); return 0;
        case F16: *out = row_dot_f32<t_f16>(w, x, row_elems); return 0;
        case BF16: *out = row_dot_f32<t_bf16>(w, x, row_elems); return 0;
        case Q4_0: *out = row_dot_q8_1<t_q4_0_dot>(w, y, row_elems); return 0;
        case Q4_1: *out = row_dot_q8_1<t_q4_1_dot>(w, y, row_elems); return 0;
        case Q5_0: *out = row_dot_q8_1<t_q5_0_dot>(w, y, row_elems); return 0;
        case Q5_1: *out = row_dot_q8_1<t_q5_1_dot>(w, y, row_elems); return 0;
        case Q8_0: *out = row_dot_q8_1<t_q8_0_dot>(w, y, row_elems); return 0;
        case IQ4_NL: *out = row_dot_q8_1<t_iq4_nl_dot>(w, y, row_elems); return 0;
        case Q2_K: *out = row_dot_q8_1<t_q2_k_dot>(w, y, row_elems); return 0;
        case Q3_K: *out = row_dot_q8_1<t_q3_k_dot>(w, y, row_elems); return 0;
        case Q4_K: *out = row_dot_q8_1<t_q4_k_dot>(w, y, row_elems); return 0;
        case Q5_K: *out = row_dot_q8_1<t_q5_k_dot>(w, y, row_elems); return 0;
        case Q6_K: *out = row_dot_q8_1<t_q6_k_dot>(w, y, row_elems); return 0;
        default: return -1;
    }
}

// The matmul kernels replayed block by block: out [n_tok][n_rows]. 0 on success.
int sluice_hc_matmul(int type_id, const uint8_t* w, const float* x, float* out, int n_rows,
                     int row_elems, int n_tok) {
    switch (type_id) {
        case F32: matmul<t_f32>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case F16: matmul<t_f16>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case BF16: matmul<t_bf16>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case Q4_0: matmul<t_q4_0>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case Q4_1: matmul<t_q4_1>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case Q5_0: matmul<t_q5_0>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case Q5_1: matmul<t_q5_1>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case Q8_0: matmul<t_q8_0>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case IQ4_NL: matmul<t_iq4_nl>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case Q2_K: matmul<t_q2_k>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case Q3_K: matmul<t_q3_k>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case Q4_K: matmul<t_q4_k>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case Q5_K: matmul<t_q5_k>(w, x, out, n_rows, row_elems, n_tok); return 0;
        case Q6_K: matmul<t_q6_k>(w, x, out, n_rows, row_elems, n_tok); return 0;
        default: return -1;
    }
}

// rms_norm_f32 for one row: 256 threads, strided fmaf partials, warp butterflies, then a
// butterfly over the 8 warp sums.
void sluice_hc_rms_norm(const float* x, const float* w, float* out, int n, float eps) {
    constexpr int threads = 256, warps = threads / WARP;
    float part[threads];
    for (int t = 0; t < threads; ++t) {
        float p = 0.0f;
        for (int i = t; i < n; i += threads) p = std::fma(x[i], x[i], p);
        part[t] = p;
    }
    float lanes[WARP] = {};
    for (int w8 = 0; w8 < warps; ++w8) lanes[w8] = warp_sum_host(part + w8 * WARP);
    for (int l = warps; l < WARP; ++l) lanes[l] = 0.0f;
    const float scale = rms_scale(warp_sum_host(lanes), n, eps);
    for (int i = 0; i < n; ++i) out[i] = rms_apply(x[i], scale, w[i]);
}

// rope_norm_f32 (neox = 0) / rope_neox_f32 (neox = 1) for one token, in place.
void sluice_hc_rope(float* x, int pos, int n_heads, int head_dim, int n_rot, float theta_scale,
                    const float* freq_factors, int neox) {
    for (int h = 0; h < n_heads; ++h) {
        for (int i = 0; i < n_rot / 2; ++i) {
            const float theta = rope_theta(pos, i, theta_scale, freq_factors);
            int a, b;
            rope_pair_index(i, n_rot, neox != 0, &a, &b);
            rope_rotate(&x[h * head_dim + a], &x[h * head_dim + b], std::cos(theta),
                        std::sin(theta));
        }
    }
}

void sluice_hc_swiglu(const float* g, const float* u, float* out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = swiglu(g[i], u[i]);
}

// attn_decode_f16kv for one token attending to positions 0..=pos: 4 warps, warp w taking
// positions w, w + 4, …, each lane the dims lane + 32·i; then the merge of the 4 states.
void sluice_hc_attention(const float* q, const uint16_t* k_cache, const uint16_t* v_cache,
                         float* out, int pos, int n_head, int n_head_kv, int head_dim,
                         float scale) {
    constexpr int warps = 4;
    const int kv_dim = n_head_kv * head_dim;
    static float acc[warps][256];
    for (int head = 0; head < n_head; ++head) {
        const int kvh = head / (n_head / n_head_kv);
        const float* qh = q + head * head_dim;
        SoftmaxState st[warps];
        for (int w = 0; w < warps; ++w) {
            st[w] = softmax_init();
            for (int d = 0; d < head_dim; ++d) acc[w][d] = 0.0f;
            for (int j = w; j <= pos; j += warps) {
                const uint16_t* kr = k_cache + (int64_t)j * kv_dim + kvh * head_dim;
                const uint16_t* vr = v_cache + (int64_t)j * kv_dim + kvh * head_dim;
                float lanes[WARP];
                for (int l = 0; l < WARP; ++l) {
                    float part = 0.0f;
                    for (int d = l; d < head_dim; d += WARP) part = std::fma(qh[d], f16_to_f32(kr[d]), part);
                    lanes[l] = part;
                }
                const float s = mul_rn(warp_sum_host(lanes), scale);
                float p;
                const float c = softmax_push(&st[w], s, &p);
                for (int d = 0; d < head_dim; ++d) acc[w][d] = softmax_acc(acc[w][d], c, p, f16_to_f32(vr[d]));
            }
        }
        float m_all = -INFINITY;
        for (int w = 0; w < warps; ++w) m_all = std::fmax(m_all, st[w].m);
        float e[warps], l_all = 0.0f;
        for (int w = 0; w < warps; ++w) {
            e[w] = softmax_rescale(st[w].m, m_all);
            l_all = std::fma(st[w].l, e[w], l_all);
        }
        for (int d = 0; d < head_dim; ++d) {
            float o = 0.0f;
            for (int w = 0; w < warps; ++w) o = std::fma(acc[w][d], e[w], o);
            out[head * head_dim + d] = div_rn(o, l_all);
        }
    }
}

// argmax_f32: 1024 strided scans, then the shared-memory tree.
uint32_t sluice_hc_argmax(const float* x, int n) {
    constexpr int threads = 1024;
    static float bv[threads];
    static int bi[threads];
    for (int t = 0; t < threads; ++t) {
        bv[t] = -INFINITY;
        bi[t] = n;
        for (int i = t; i < n; i += threads) {
            if (argmax_better(x[i], i, bv[t], bi[t])) {
                bv[t] = x[i];
                bi[t] = i;
            }
        }
    }
    for (int half = threads / 2; half > 0; half >>= 1) {
        for (int t = 0; t < half; ++t) {
            if (argmax_better(bv[t + half], bi[t + half], bv[t], bi[t])) {
                bv[t] = bv[t + half];
                bi[t] = bi[t + half];
            }
        }
    }
    return (uint32_t)(bi[0] < n ? bi[0] : 0);
}

}  // extern "C"
