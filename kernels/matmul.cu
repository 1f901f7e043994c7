// Prefill matmul for every weight type: matmul_<type>_f32(w, x, out, n_rows, row_elems, n_tok)
//   w: n_rows rows of row_elems elements (row_elems a multiple of 32 and of the block size);
//   x: f32 [n_tok][row_elems]; out: f32 [n_tok][n_rows].
//   Launch (src/cuda/launch.rs `matmul`): block 256, grid (ceil(n_rows / 64), ceil(n_tok / 32)),
//   static shared memory 12,672 bytes.
#include "matmul.cuh"

using namespace sluice;

template <typename T>
__device__ __forceinline__ void matmul_body(const uint8_t* __restrict__ w,
                                            const float* __restrict__ x, float* __restrict__ out,
                                            int n_rows, int row_elems, int n_tok) {
    __shared__ MmTile tile;
    const int tid = threadIdx.x;
    const int row0 = blockIdx.x * MM_ROWS, tok0 = blockIdx.y * MM_TOKS;
    float acc[4][2] = {};
    for (int k0 = 0; k0 < row_elems; k0 += MM_K) {
        mm_stage<T>(tid, w, x, n_rows, row_elems, n_tok, row0, tok0, k0, &tile);
        __syncthreads();
        mm_accumulate(tid, &tile, acc);
        __syncthreads();
    }
    mm_store(tid, acc, out, n_rows, n_tok, row0, tok0);
}

#define SLUICE_MATMUL(name, T)                                                          \
    extern "C" __global__ void __launch_bounds__(MM_THREADS)                            \
        matmul_##name##_f32(const uint8_t* w, const float* x, float* out, int n_rows,   \
                            int row_elems, int n_tok) {                                 \
        matmul_body<T>(w, x, out, n_rows, row_elems, n_tok);                            \
    }

SLUICE_MATMUL(f32, t_f32)
SLUICE_MATMUL(f16, t_f16)
SLUICE_MATMUL(bf16, t_bf16)
SLUICE_MATMUL(q4_0, t_q4_0)
SLUICE_MATMUL(q4_1, t_q4_1)
SLUICE_MATMUL(q5_0, t_q5_0)
SLUICE_MATMUL(q5_1, t_q5_1)
SLUICE_MATMUL(q8_0, t_q8_0)
SLUICE_MATMUL(iq4_nl, t_iq4_nl)
SLUICE_MATMUL(q2_k, t_q2_k)
SLUICE_MATMUL(q3_k, t_q3_k)
SLUICE_MATMUL(q4_k, t_q4_k)
SLUICE_MATMUL(q5_k, t_q5_k)
SLUICE_MATMUL(q6_k, t_q6_k)
