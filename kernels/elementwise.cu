// Element-wise ops and argmax.
//   swiglu_f32(gate, up, out, n)   out[i] = silu(gate[i])·up[i]; out may equal gate.
//   add_f32(x, y, n)               x[i] += y[i] (residual connections)
//   add_rows_f32(x, b, n, row)     x[i] += b[i % row] (q/k/v biases)
//       Launch (src/cuda/launch.rs `elementwise`): block 256, grid ceil(n / 256).
//   kv_store_f16(k, v, k_cache, v_cache, pos, kv_dim)
//       k, v: f32 [n_tok][kv_dim]; caches: f16 [n_ctx][kv_dim] for one layer; pos: int32 [n_tok].
//       Launch (src/cuda/launch.rs `kv_store`): block 256, grid (ceil(kv_dim / 256), n_tok).
//   argmax_f32(x, n, out)          out[0] = index of the max (ties: lowest index)
//       Launch (src/cuda/launch.rs `argmax`): one block of 1024.
#include "ops.cuh"

using namespace sluice;

constexpr int EW_THREADS = 256;
constexpr int ARGMAX_THREADS = 1024;

extern "C" __global__ void __launch_bounds__(EW_THREADS)
    swiglu_f32(const float* gate, const float* __restrict__ up, float* out, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x;
    if (i < n) out[i] = swiglu(gate[i], up[i]);
}

extern "C" __global__ void __launch_bounds__(EW_THREADS)
    add_f32(float* __restrict__ x, const float* __restrict__ y, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x;
    if (i < n) x[i] = add_rn(x[i], y[i]);
}

extern "C" __global__ void __launch_bounds__(EW_THREADS)
    add_rows_f32(float* __restrict__ x, const float* __restrict__ b, int64_t n, int row) {
    const int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x;
    if (i < n) x[i] = add_rn(x[i], b[i % row]);
}

extern "C" __global__ void __launch_bounds__(EW_THREADS)
    kv_store_f16(const float* __restrict__ k, const float* __restrict__ v,
                 uint16_t* __restrict__ k_cache, uint16_t* __restrict__ v_cache,
                 const int* __restrict__ pos, int kv_dim) {
    const int i = blockIdx.x * EW_THREADS + threadIdx.x;
    if (i >= kv_dim) return;
    const int tok = blockIdx.y;
    const int64_t src = (int64_t)tok * kv_dim + i, dst = (int64_t)pos[tok] * kv_dim + i;
    k_cache[dst] = f32_to_f16(k[src]);
    v_cache[dst] = f32_to_f16(v[src]);
}

extern "C" __global__ void __launch_bounds__(ARGMAX_THREADS)
    argmax_f32(const float* __restrict__ x, int n, unsigned* __restrict__ out) {
    __shared__ float best_v[ARGMAX_THREADS];
    __shared__ int best_i[ARGMAX_THREADS];
    const int tid = threadIdx.x;
    float bv = -INFINITY;
    int bi = n;  // "none yet": loses every tie
    for (int i = tid; i < n; i += ARGMAX_THREADS) {
        if (argmax_better(x[i], i, bv, bi)) {
            bv = x[i];
            bi = i;
        }
    }
    best_v[tid] = bv;
    best_i[tid] = bi;
    __syncthreads();
    for (int half = ARGMAX_THREADS / 2; half > 0; half >>= 1) {
        if (tid < half && argmax_better(best_v[tid + half], best_i[tid + half], best_v[tid], best_i[tid])) {
            best_v[tid] = best_v[tid + half];
            best_i[tid] = best_i[tid + half];
        }
        __syncthreads();
    }
    if (tid == 0) out[0] = (unsigned)(best_i[0] < n ? best_i[0] : 0);
}
