// Prefill matmul tiles: out[t][r] = Σ_k W[r][k]·x[t][k] for a 64-row × 32-token tile, the
// weights dequantised into shared memory (bit-exact f32 values, dequant.cuh) 32 columns at a
// time and multiplied in f32 with fmaf. Written as per-thread phases with the thread index as a
// parameter so the host check can replay a whole CUDA block between barriers.
#pragma once

#include "dequant.cuh"

namespace sluice {

constexpr int MM_ROWS = 64;     // weight rows per CUDA block
constexpr int MM_TOKS = 32;     // tokens per CUDA block
constexpr int MM_K = 32;        // columns staged per step
constexpr int MM_THREADS = 256; // threads per CUDA block
constexpr int MM_PAD = MM_K + 1;
static_assert(MM_ROWS * MM_K == MM_THREADS * 8, "each thread stages 8 weights");
static_assert(MM_TOKS * MM_K == MM_THREADS * 4, "each thread stages 4 activations");
static_assert(MM_ROWS * MM_TOKS == MM_THREADS * 8, "each thread owns 4 rows x 2 tokens");

struct MmTile {
    float w[MM_ROWS][MM_PAD];
    float x[MM_TOKS][MM_PAD];
};

template <typename T>
SLUICE_HD void mm_stage(int tid, const uint8_t* w, const float* x, int n_rows, int row_elems,
                        int n_tok, int row0, int tok0, int k0, MmTile* tile) {
    const int64_t row_bytes = (int64_t)(row_elems / T::qk) * T::bytes;
    {
        const int r = tid >> 2, c0 = (tid & 3) * 8, row = row0 + r;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            tile->w[r][c0 + j] = row < n_rows ? dq_row<T>(w + row * row_bytes, k0 + c0 + j) : 0.0f;
        }
    }
    {
        const int t = tid >> 3, c0 = (tid & 7) * 4, tok = tok0 + t;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            tile->x[t][c0 + j] = tok < n_tok ? x[(int64_t)tok * row_elems + k0 + c0 + j] : 0.0f;
        }
    }
}

// Thread tid owns rows (tid % 16) + 16·i, i < 4, and tokens (tid / 16) + 16·j, j < 2.
SLUICE_HD void mm_accumulate(int tid, const MmTile* tile, float acc[4][2]) {
    const int tr = tid & 15, tt = tid >> 4;
#pragma unroll 4
    for (int k = 0; k < MM_K; ++k) {
        const float x0 = tile->x[tt][k], x1 = tile->x[tt + 16][k];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float wv = tile->w[tr + 16 * i][k];
            acc[i][0] = fmaf(wv, x0, acc[i][0]);
            acc[i][1] = fmaf(wv, x1, acc[i][1]);
        }
    }
}

SLUICE_HD void mm_store(int tid, const float acc[4][2], float* out, int n_rows, int n_tok,
                        int row0, int tok0) {
    const int tr = tid & 15, tt = tid >> 4;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
        const int tok = tok0 + tt + 16 * j;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int row = row0 + tr + 16 * i;
            if (tok < n_tok && row < n_rows) out[(int64_t)tok * n_rows + row] = acc[i][j];
        }
    }
}

}  // namespace sluice
