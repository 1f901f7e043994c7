// Dequantisation to f16, one kernel per type: dequant_<type>_f16(src, dst, n).
//   src: n elements of <type>, whole blocks; dst: n halves, 16-byte aligned.
//   Launch (src/cuda/launch.rs `dequant`): block 256 threads, each writes 8 consecutive
//   halves; grid ceil(n / 2048).
// Values are the f32 reference values (bit-exact, dequant.cuh) rounded to nearest even.
#include "dequant.cuh"

using namespace sluice;

constexpr int DQ_THREADS = 256;
constexpr int DQ_PER_THREAD = 8;

template <typename T>
__device__ __forceinline__ void dequant_body(const uint8_t* __restrict__ src,
                                             uint16_t* __restrict__ dst, int64_t n) {
    const int64_t i0 = ((int64_t)blockIdx.x * DQ_THREADS + threadIdx.x) * DQ_PER_THREAD;
    if (i0 >= n) return;
    if (i0 + DQ_PER_THREAD <= n) {
        uint32_t packed[DQ_PER_THREAD / 2];
#pragma unroll
        for (int j = 0; j < DQ_PER_THREAD / 2; ++j) {
            const uint32_t lo = f32_to_f16(dq_row<T>(src, i0 + 2 * j));
            const uint32_t hi = f32_to_f16(dq_row<T>(src, i0 + 2 * j + 1));
            packed[j] = lo | (hi << 16);
        }
        *(uint4*)(dst + i0) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
    } else {
        for (int64_t i = i0; i < n; ++i) dst[i] = f32_to_f16(dq_row<T>(src, i));
    }
}

#define SLUICE_DEQUANT(name, T)                                                         \
    extern "C" __global__ void __launch_bounds__(DQ_THREADS)                            \
        dequant_##name##_f16(const uint8_t* src, uint16_t* dst, int64_t n) {            \
        dequant_body<T>(src, dst, n);                                                   \
    }

SLUICE_DEQUANT(f32, t_f32)
SLUICE_DEQUANT(f16, t_f16)
SLUICE_DEQUANT(bf16, t_bf16)
SLUICE_DEQUANT(q4_0, t_q4_0)
SLUICE_DEQUANT(q4_1, t_q4_1)
SLUICE_DEQUANT(q5_0, t_q5_0)
SLUICE_DEQUANT(q5_1, t_q5_1)
SLUICE_DEQUANT(q8_0, t_q8_0)
SLUICE_DEQUANT(q8_1, t_q8_1)
SLUICE_DEQUANT(iq4_nl, t_iq4_nl)
SLUICE_DEQUANT(q2_k, t_q2_k)
SLUICE_DEQUANT(q3_k, t_q3_k)
SLUICE_DEQUANT(q4_k, t_q4_k)
SLUICE_DEQUANT(q5_k, t_q5_k)
SLUICE_DEQUANT(q6_k, t_q6_k)
SLUICE_DEQUANT(q8_k, t_q8_k)
