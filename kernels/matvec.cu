// Decode matvec, one warp per weight row, several tokens via grid.y:
//   matvec_<type>_q8_1(w, y, out, n_rows, row_elems)   quantised weights (11 types)
//       w: n_rows rows of row_elems elements; y: n_tok rows of row_elems/32 Q8_1 blocks
//       (quantize_q8_1_f32); out: f32 [n_tok][n_rows].
//   matvec_<type>_f32(w, x, out, n_rows, row_elems)     F32/F16/BF16 weights, f32 x [n_tok][row_elems]
//   Launch (src/cuda/launch.rs `matvec`): block (32, 4), grid (ceil(n_rows / 4), n_tok).
#include "matvec.cuh"
#include "ops.cuh"

using namespace sluice;

template <typename T>
__device__ __forceinline__ void matvec_q8_1_body(const uint8_t* __restrict__ w,
                                                 const block_q8_1* __restrict__ y,
                                                 float* __restrict__ out, int n_rows,
                                                 int row_elems) {
    const int row = blockIdx.x * MV_WARPS + threadIdx.y;
    if (row >= n_rows) return;  // the whole warp leaves together
    const int tok = blockIdx.y;
    const int64_t row_bytes = (int64_t)(row_elems / T::qk) * T::bytes;
    const float part = mv_lane_q8_1<T>(w + row * row_bytes, y + (int64_t)tok * (row_elems / QK),
                                       row_elems, threadIdx.x);
    const float sum = warp_sum(part);
    if (threadIdx.x == 0) out[(int64_t)tok * n_rows + row] = sum;
}

template <typename T>
__device__ __forceinline__ void matvec_f32_body(const uint8_t* __restrict__ w,
                                                const float* __restrict__ x,
                                                float* __restrict__ out, int n_rows,
                                                int row_elems) {
    const int row = blockIdx.x * MV_WARPS + threadIdx.y;
    if (row >= n_rows) return;
    const int tok = blockIdx.y;
    const float part = mv_lane_f32<T>(w + (int64_t)row * row_elems * T::bytes,
                                      x + (int64_t)tok * row_elems, row_elems, threadIdx.x);
    const float sum = warp_sum(part);
    if (threadIdx.x == 0) out[(int64_t)tok * n_rows + row] = sum;
}

#define SLUICE_MATVEC_Q(name, T)                                                         \
    extern "C" __global__ void __launch_bounds__(32 * MV_WARPS)                          \
        matvec_##name##_q8_1(const uint8_t* w, const block_q8_1* y, float* out,          \
                             int n_rows, int row_elems) {                                \
        matvec_q8_1_body<T>(w, y, out, n_rows, row_elems);                               \
    }
#define SLUICE_MATVEC_F(name, T)                                                         \
    extern "C" __global__ void __launch_bounds__(32 * MV_WARPS)                          \
        matvec_##name##_f32(const uint8_t* w, const float* x, float* out, int n_rows,    \
                            int row_elems) {                                             \
        matvec_f32_body<T>(w, x, out, n_rows, row_elems);                                \
    }

SLUICE_MATVEC_Q(q4_0, t_q4_0_dot)
SLUICE_MATVEC_Q(q4_1, t_q4_1_dot)
SLUICE_MATVEC_Q(q5_0, t_q5_0_dot)
SLUICE_MATVEC_Q(q5_1, t_q5_1_dot)
SLUICE_MATVEC_Q(q8_0, t_q8_0_dot)
SLUICE_MATVEC_Q(iq4_nl, t_iq4_nl_dot)
SLUICE_MATVEC_Q(q2_k, t_q2_k_dot)
SLUICE_MATVEC_Q(q3_k, t_q3_k_dot)
SLUICE_MATVEC_Q(q4_k, t_q4_k_dot)
SLUICE_MATVEC_Q(q5_k, t_q5_k_dot)
SLUICE_MATVEC_Q(q6_k, t_q6_k_dot)
SLUICE_MATVEC_F(f32, t_f32)
SLUICE_MATVEC_F(f16, t_f16)
SLUICE_MATVEC_F(bf16, t_bf16)
